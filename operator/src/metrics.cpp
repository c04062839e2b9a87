#include "metrics.h"

#include <prometheus/text_serializer.h>

#include <sstream>

namespace kuberelay::op {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      reconciles_(BuildCounter()
                      .Name("kuberelay_operator_reconciles_total")
                      .Help("Status reconciles by kind and result")
                      .Register(*registry_)),
      objects_(BuildGauge()
                   .Name("kuberelay_operator_objects")
                   .Help("Objects by kind and state (accepted, rejected, warning)")
                   .Register(*registry_)),
      duration_(BuildHistogram()
                    .Name("kuberelay_operator_reconcile_duration_seconds")
                    .Help("Duration of a reconcile pass (decode, compile, status writes)")
                    .Register(*registry_)),
      watchRestarts_(BuildCounter()
                         .Name("kuberelay_operator_watch_restarts_total")
                         .Help("Watches that ended, by kind and reason (closed, gone, error)")
                         .Register(*registry_)),
      policy_(BuildGauge()
                  .Name("kuberelay_operator_policy_info")
                  .Help("The compiled policy version (value 1)")
                  .Register(*registry_)),
      diagnostics_(BuildGauge()
                       .Name("kuberelay_operator_compile_diagnostics")
                       .Help("Errors and warnings of the last compile")
                       .Register(*registry_)),
      relays_(BuildGauge()
                  .Name("kuberelay_operator_relays_connected")
                  .Help("Relays subscribed to the policy channel, by pool")
                  .Register(*registry_)),
      relayUpdates_(BuildCounter()
                        .Name("kuberelay_operator_relay_updates_total")
                        .Help("Snapshots relays applied (ACK) or rejected (NACK), by pool")
                        .Register(*registry_)),
      snapshotBytes_(BuildGauge()
                         .Name("kuberelay_operator_snapshot_bytes")
                         .Help("Serialized size of the pool's latest snapshot")
                         .Register(*registry_)),
      propagation_(BuildHistogram()
                       .Name("kuberelay_operator_propagation_seconds")
                       .Help("From the first change observed to the last relay's ACK, by pool")
                       .Register(*registry_)),
      leader_(
          BuildGauge()
              .Name("kuberelay_operator_leader")
              .Help("1 while this replica holds the leader Lease (writes status, serves relays)")
              .Register(*registry_)) {
  for (const char* kind : {"ReceiveConnector", "SenderPermission", "AcceptedDomain"}) {
    for (const char* state : {"accepted", "rejected", "warning"}) {
      objects_.Add({{"kind", kind}, {"state", state}}).Set(0);
    }
  }
}

std::string Metrics::render() const {
  prometheus::TextSerializer serializer;
  std::ostringstream out;
  serializer.Serialize(out, registry_->Collect());
  return out.str();
}

void Metrics::reconciled(const char* kind, const char* result) {
  reconciles_.Add({{"kind", kind}, {"result", result}}).Increment();
}

void Metrics::objectStates(const char* kind, size_t accepted, size_t rejected,
                           size_t withWarnings) {
  objects_.Add({{"kind", kind}, {"state", "accepted"}}).Set(static_cast<double>(accepted));
  objects_.Add({{"kind", kind}, {"state", "rejected"}}).Set(static_cast<double>(rejected));
  objects_.Add({{"kind", kind}, {"state", "warning"}}).Set(static_cast<double>(withWarnings));
}

void Metrics::passDuration(double seconds) {
  static const prometheus::Histogram::BucketBoundaries buckets{0.001, 0.005, 0.01, 0.05, 0.1,
                                                               0.5,   1,     5,    10,   30};
  duration_.Add({}, buckets).Observe(seconds);
}

void Metrics::compiled(const std::string& version, size_t errors, size_t warnings) {
  {
    std::lock_guard lock(mutex_);
    if (currentPolicy_) policy_.Remove(currentPolicy_);
    currentPolicy_ = &policy_.Add({{"version", version}});
    currentPolicy_->Set(1);
  }
  diagnostics_.Add({{"severity", "error"}}).Set(static_cast<double>(errors));
  diagnostics_.Add({{"severity", "warning"}}).Set(static_cast<double>(warnings));
}

void Metrics::watchRestart(const std::string& kind, const char* reason) {
  watchRestarts_.Add({{"kind", kind}, {"reason", reason}}).Increment();
}

void Metrics::relaysConnected(const std::string& pool, size_t count) {
  relays_.Add({{"pool", pool}}).Set(static_cast<double>(count));
}

void Metrics::propagated(const std::string& pool, double seconds) {
  static const prometheus::Histogram::BucketBoundaries buckets{0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                               1,    2.5,   5,    10,  30};
  propagation_.Add({{"pool", pool}}, buckets).Observe(seconds);
}

void Metrics::relayUpdate(const std::string& pool, const char* result) {
  relayUpdates_.Add({{"pool", pool}, {"result", result}}).Increment();
}

void Metrics::leader(bool leading) { leader_.Add({}).Set(leading ? 1 : 0); }

void Metrics::snapshotBytes(const std::string& pool, size_t bytes) {
  snapshotBytes_.Add({{"pool", pool}}).Set(static_cast<double>(bytes));
}

}  // namespace kuberelay::op
