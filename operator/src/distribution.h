// NAME
//   distribution.h - which policy each relay pool gets, and which version each relay runs
// DESCRIPTION
//   The reconciler publishes every newly compiled policy (the decoded objects and their
//   manifests). A pool's snapshot is cut from it on first use: the pool's ReceiveConnectors,
//   the SenderPermissions naming them, every AcceptedDomain and the Secrets those connectors
//   reference (a relay never sees another pool's keys or password hashes), compiled for the
//   pool to get its version — the version the relay must arrive at when it compiles the same
//   manifests. The policy server (policy_server.h) streams snapshots and reports each relay's
//   ACK or NACK here; rollout() turns that into the Ready condition and status.relays.
//   Thread-safe; no gRPC or protobuf types (unit-tested on its own).
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "reconciler.h"

namespace kuberelay::op {

struct PoolSnapshot {
  std::string pool;
  std::string version;
  uint64_t epoch = 0;  // which publish it was cut from (unique: part of the nonce)
  std::vector<const PolicySourceObject*> objects;
  std::shared_ptr<const std::vector<PolicySourceObject>> keepAlive;  // owns `objects`
  std::chrono::steady_clock::time_point changedAt;
};

// Metrics of the distributor; every method optional.
class DistributionObserver {
public:
  virtual ~DistributionObserver() = default;
  virtual void relaysConnected(const std::string& /*pool*/, size_t /*count*/) {}
  virtual void propagated(const std::string& /*pool*/, double /*seconds*/) {}
  virtual void relayUpdate(const std::string& /*pool*/, const char* /*result*/) {}
};

class PolicyDistributor final : public PolicyPublisher {
public:
  explicit PolicyDistributor(DistributionObserver* observer = nullptr) : observer_(observer) {}

  // Called (outside the lock) whenever a rollout changes: relays came, went, ACKed or NACKed.
  void onRolloutChange(std::function<void()> callback);

  uint64_t publish(std::shared_ptr<const policy::ResourceSet> set,
                   std::shared_ptr<const std::vector<PolicySourceObject>> objects,
                   std::chrono::steady_clock::time_point changedAt) override;
  // Relays of `pool` ("" = all) running a policy published at or after epoch `since`.
  Rollout rollout(const std::string& pool, uint64_t since) const override;

  // The pool's snapshot of the latest publish; null before the first publish.
  std::shared_ptr<const PoolSnapshot> snapshot(const std::string& pool);
  // Blocks until a publish newer than `epoch`, stop(), or the timeout; returns the newest epoch.
  uint64_t waitForPublish(uint64_t epoch, std::chrono::milliseconds timeout);
  void stop();

  // Relays (one per stream).
  uint64_t connect(const std::string& pod, const std::string& pool, const std::string& version);
  void acked(uint64_t relay, const std::string& version);
  void nacked(uint64_t relay, const std::string& rejectedVersion, const std::string& error);
  void disconnect(uint64_t relay);

private:
  struct Relay {
    std::string pod, pool, version;  // version: the one it runs
    std::string rejectedVersion, error;
  };
  std::shared_ptr<const PoolSnapshot> snapshotLocked(const std::string& pool) const;
  void relayCountChanged(const std::string& pool);  // lock held
  void checkPropagated(const std::string& pool);    // lock held
  void notifyRolloutChange();

  DistributionObserver* observer_;
  mutable std::mutex mutex_;
  std::condition_variable published_;
  std::function<void()> onRolloutChange_;
  bool stopped_ = false;
  uint64_t epoch_ = 0;
  std::shared_ptr<const policy::ResourceSet> set_;
  std::shared_ptr<const std::vector<PolicySourceObject>> objects_;
  std::chrono::steady_clock::time_point changedAt_;
  mutable std::map<std::string, std::shared_ptr<const PoolSnapshot>> pools_;  // of epoch_
  // pool -> version -> the latest epoch whose snapshot had that version: a relay running it
  // runs everything published up to that epoch.
  mutable std::map<std::string, std::map<std::string, uint64_t>> versionEpochs_;
  std::map<std::string, uint64_t> propagatedEpoch_;  // by pool
  std::map<uint64_t, Relay> relays_;
  uint64_t nextRelay_ = 0;
};

// Pure: the objects of `set` a pool's relays need (see above), as indexes into `objects`.
std::vector<size_t> poolObjects(const policy::ResourceSet& set,
                                const std::vector<PolicySourceObject>& objects,
                                const std::string& pool);

}  // namespace kuberelay::op
