// NAME
//   metrics.h - the operator's Prometheus metrics (prometheus-cpp core, text format)
// DESCRIPTION
//   kuberelay_operator_reconciles_total{kind,result}      status reconciles (updated, unchanged,
//                                                        conflict, error, gone)
//   kuberelay_operator_objects{kind,state}                objects by state (accepted, rejected,
//                                                        warning = with at least one warning)
//   kuberelay_operator_reconcile_duration_seconds         duration of a reconcile pass
//   kuberelay_operator_watch_restarts_total{kind,reason}  watches that ended (closed, gone, error)
//   kuberelay_operator_policy_info{version}               the compiled policy version (value 1)
//   kuberelay_operator_compile_diagnostics{severity}      errors and warnings of the last compile
//   kuberelay_operator_relays_connected{pool}             relays subscribed to the policy channel
//   kuberelay_operator_relay_updates_total{pool,result}   ACKs (applied) and NACKs (rejected)
//   kuberelay_operator_snapshot_bytes{pool}               size of the pool's last snapshot
//   kuberelay_operator_propagation_seconds{pool}          first change observed -> last relay ACK
//   kuberelay_operator_leader                             1 while this replica holds the Lease
//   Label values come from fixed sets, never from object names.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <memory>
#include <mutex>
#include <string>

#include "distribution.h"
#include "policy_server.h"
#include "reconciler.h"

namespace kuberelay::op {

class Metrics final : public ReconcileObserver,
                      public DistributionObserver,
                      public SnapshotSizeObserver {
public:
  Metrics();

  std::string render() const;

  void reconciled(const char* kind, const char* result) override;
  void objectStates(const char* kind, size_t accepted, size_t rejected,
                    size_t withWarnings) override;
  void passDuration(double seconds) override;
  void compiled(const std::string& version, size_t errors, size_t warnings) override;
  void watchRestart(const std::string& kind, const char* reason);
  void relaysConnected(const std::string& pool, size_t count) override;
  void propagated(const std::string& pool, double seconds) override;
  void relayUpdate(const std::string& pool, const char* result) override;
  void snapshotBytes(const std::string& pool, size_t bytes) override;
  void leader(bool leading);

private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& reconciles_;
  prometheus::Family<prometheus::Gauge>& objects_;
  prometheus::Family<prometheus::Histogram>& duration_;
  prometheus::Family<prometheus::Counter>& watchRestarts_;
  prometheus::Family<prometheus::Gauge>& policy_;
  prometheus::Family<prometheus::Gauge>& diagnostics_;
  prometheus::Family<prometheus::Gauge>& relays_;
  prometheus::Family<prometheus::Counter>& relayUpdates_;
  prometheus::Family<prometheus::Gauge>& snapshotBytes_;
  prometheus::Family<prometheus::Histogram>& propagation_;
  prometheus::Family<prometheus::Gauge>& leader_;
  std::mutex mutex_;
  prometheus::Gauge* currentPolicy_ = nullptr;
};

}  // namespace kuberelay::op
