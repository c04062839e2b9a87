// NAME
//   leader.h - leader election with a coordination.k8s.io/v1 Lease, as client-go does it
// DESCRIPTION
//   Every replica computes the same policy; only the leader writes status and Events and
//   serves the policy channel. A replica takes the Lease when it does not exist, when it is
//   its own, when it was released (empty holderIdentity), or when its record has not changed
//   for leaseDurationSeconds as measured on this replica's own clock (no clock-skew
//   assumptions, like client-go's observedTime). Writes are PUTs with the resourceVersion
//   read, so two candidates cannot both win. A leader that cannot renew within renewDeadline
//   steps down. On SIGTERM the leader releases the Lease (holderIdentity "") so a standby
//   takes over at its next retry instead of after a full lease duration.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <string>

#include "kuberelay/operator/kube_api.h"

namespace kuberelay::op {

struct LeaderOptions {
  std::string ns = "default";
  std::string name = "kuberelay-operator";
  std::string identity;  // unique per replica (pod name + random suffix)
  std::chrono::milliseconds leaseDuration{15000};
  std::chrono::milliseconds renewDeadline{10000};
  std::chrono::milliseconds retryPeriod{2000};
  std::function<std::chrono::system_clock::time_point()> wallClock = [] {
    return std::chrono::system_clock::now();
  };
  std::function<std::chrono::steady_clock::time_point()> clock = [] {
    return std::chrono::steady_clock::now();
  };
};

class LeaderElector {
public:
  // onChange(true) when this replica starts leading, onChange(false) when it stops.
  LeaderElector(KubeApi& api, LeaderOptions options, std::function<void(bool)> onChange = {});

  // Tries every retryPeriod until cancelled; then releases the Lease if it holds it.
  void run(Cancellation& cancel);
  // One attempt to acquire or renew; returns whether this replica leads afterwards.
  bool step();
  void release();
  bool isLeader() const { return leader_.load(); }
  const std::string& identity() const { return options_.identity; }

private:
  bool tryAcquireOrRenew();
  void setLeader(bool leading);
  std::string leasePath() const;
  Json record(const Json* current) const;

  KubeApi& api_;
  LeaderOptions options_;
  std::function<void(bool)> onChange_;
  std::atomic<bool> leader_{false};
  std::string observedRecord_;  // holder + renewTime last seen
  std::chrono::steady_clock::time_point observedAt_{};
  std::chrono::steady_clock::time_point lastRenewed_{};
};

// RFC 3339 with microseconds ("2025-01-02T03:04:05.123456Z"), as metav1.MicroTime.
std::string microTime(std::chrono::system_clock::time_point t);

}  // namespace kuberelay::op
