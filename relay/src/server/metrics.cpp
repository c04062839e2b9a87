#include "metrics.h"

#include <prometheus/text_serializer.h>

#include <sstream>

namespace kuberelay::relay {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

std::string str(std::string_view s) { return std::string(s); }

}  // namespace

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      connections_(BuildCounter()
                       .Name("kuberelay_connections_total")
                       .Help("SMTP connections by connector and result (accepted, no_connector, "
                             "connector_misconfigured, no_policy, limit_total, limit_per_source, "
                             "proxy_refused)")
                       .Register(*registry_)),
      active_(BuildGauge()
                  .Name("kuberelay_connections_active")
                  .Help("Open SMTP connections by connector")
                  .Register(*registry_)),
      auth_(BuildCounter()
                .Name("kuberelay_auth_decisions_total")
                .Help("AUTH outcomes by connector, mechanism and result")
                .Register(*registry_)),
      relay_(BuildCounter()
                 .Name("kuberelay_relay_decisions_total")
                 .Help("RCPT TO decisions by connector, decision and reason")
                 .Register(*registry_)),
      sender_(BuildCounter()
                  .Name("kuberelay_sender_decisions_total")
                  .Help("MAIL FROM decisions by connector, decision and reason")
                  .Register(*registry_)),
      replies_(BuildCounter()
                   .Name("kuberelay_replies_total")
                   .Help("SMTP replies sent, by connector and reply code")
                   .Register(*registry_)),
      messages_(BuildCounter()
                    .Name("kuberelay_messages_total")
                    .Help("Messages by connector and result (accepted, rejected, deferred)")
                    .Register(*registry_)),
      messageSize_(BuildHistogram()
                       .Name("kuberelay_message_size_bytes")
                       .Help("Size of accepted messages")
                       .Register(*registry_)),
      forwardDuration_(BuildHistogram()
                           .Name("kuberelay_forward_duration_seconds")
                           .Help("Time to hand a message to the next hop, by target")
                           .Register(*registry_)),
      forwardErrors_(BuildCounter()
                         .Name("kuberelay_forward_errors_total")
                         .Help("Next-hop failures by target and kind")
                         .Register(*registry_)),
      version_(BuildGauge()
                   .Name("kuberelay_policy_version_info")
                   .Help("The policy version in force (value 1)")
                   .Register(*registry_)),
      reloads_(BuildCounter()
                   .Name("kuberelay_policy_reloads_total")
                   .Help("Policy loads by result (applied, rejected)")
                   .Register(*registry_)),
      updates_(BuildCounter()
                   .Name("kuberelay_policy_updates_total")
                   .Help("Snapshots received from the operator, by result (applied: ACK, "
                         "rejected: NACK)")
                   .Register(*registry_)),
      audit_(BuildCounter()
                 .Name("kuberelay_audit_would_refuse_total")
                 .Help("Refusals an Audit-mode connector reported instead of enforcing")
                 .Register(*registry_)),
      upstream_(BuildGauge()
                    .Name("kuberelay_upstream_connections")
                    .Help("Next-hop connections by smarthost and state (active, idle)")
                    .Register(*registry_)),
      upstreamSessions_(BuildCounter()
                            .Name("kuberelay_upstream_transactions_total")
                            .Help("Transactions started at the next hop, by smarthost and "
                                  "connection (new, reused from the pool)")
                            .Register(*registry_)) {}

std::string Metrics::render() const {
  prometheus::TextSerializer serializer;
  std::ostringstream out;
  serializer.Serialize(out, registry_->Collect());
  return out.str();
}

void Metrics::connection(std::string_view connector, std::string_view result) {
  connections_.Add({{"connector", str(connector)}, {"result", str(result)}}).Increment();
}

prometheus::Gauge& Metrics::active(std::string_view connector) {
  return active_.Add({{"connector", str(connector)}});
}

void Metrics::auth(std::string_view connector, std::string_view mechanism,
                   std::string_view result) {
  auth_.Add({{"connector", str(connector)}, {"mechanism", str(mechanism)}, {"result", str(result)}})
      .Increment();
}

void Metrics::relayDecision(std::string_view connector, bool allowed, std::string_view reason) {
  relay_
      .Add({{"connector", str(connector)},
            {"decision", allowed ? "accept" : "refuse"},
            {"reason", str(reason)}})
      .Increment();
}

void Metrics::senderDecision(std::string_view connector, bool allowed, std::string_view reason) {
  sender_
      .Add({{"connector", str(connector)},
            {"decision", allowed ? "accept" : "refuse"},
            {"reason", str(reason)}})
      .Increment();
}

void Metrics::reply(std::string_view connector, uint16_t code) {
  replies_.Add({{"connector", str(connector)}, {"code", std::to_string(code)}}).Increment();
}

void Metrics::message(std::string_view connector, std::string_view result, uint64_t bytes) {
  messages_.Add({{"connector", str(connector)}, {"result", str(result)}}).Increment();
  if (result == "accepted") {
    static const prometheus::Histogram::BucketBoundaries kSizes{
        1024, 10240, 102400, 1048576, 10485760, 37748736, 104857600};
    messageSize_.Add({}, kSizes).Observe(static_cast<double>(bytes));
  }
}

void Metrics::forward(std::string_view target, double seconds, std::string_view errorKind) {
  static const prometheus::Histogram::BucketBoundaries kSeconds{
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
  if (errorKind.empty()) {
    forwardDuration_.Add({{"smarthost", str(target)}}, kSeconds).Observe(seconds);
  } else {
    forwardErrors_.Add({{"smarthost", str(target)}, {"kind", str(errorKind)}}).Increment();
  }
}

void Metrics::auditWouldRefuse(std::string_view connector, std::string_view stage,
                               std::string_view reason) {
  audit_.Add({{"connector", str(connector)}, {"stage", str(stage)}, {"reason", str(reason)}})
      .Increment();
}

void Metrics::policyLoaded(std::string_view version, bool ok) {
  reloads_.Add({{"result", ok ? "applied" : "rejected"}}).Increment();
  if (!ok) return;
  if (currentVersion_) version_.Remove(currentVersion_);
  currentVersion_ = &version_.Add({{"version", str(version)}});
  currentVersion_->Set(1);
}

void Metrics::enableControlPlane() {
  if (controlPlaneConnected_) return;
  controlPlaneConnected_ = &BuildGauge()
                                .Name("kuberelay_control_plane_connected")
                                .Help("1 while the policy stream to the operator is open")
                                .Register(*registry_)
                                .Add({});
  // Both results exist from the start, so rate() and alerts see a 0 before the first one.
  updates_.Add({{"result", "applied"}});
  updates_.Add({{"result", "rejected"}});
}

void Metrics::controlPlaneConnected(bool connected) {
  if (controlPlaneConnected_) controlPlaneConnected_->Set(connected ? 1 : 0);
}

void Metrics::policyUpdate(bool applied) {
  updates_.Add({{"result", applied ? "applied" : "rejected"}}).Increment();
}

prometheus::Gauge& Metrics::upstream(std::string_view smarthost, std::string_view state) {
  return upstream_.Add({{"smarthost", str(smarthost)}, {"state", str(state)}});
}

void Metrics::upstreamSession(std::string_view smarthost, bool reused) {
  upstreamSessions_.Add({{"smarthost", str(smarthost)}, {"connection", reused ? "reused" : "new"}})
      .Increment();
}

}  // namespace kuberelay::relay
