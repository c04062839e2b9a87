// NAME
//   metrics.h - the relay's Prometheus metrics, declared in one place
// DESCRIPTION
//   Label values are bounded: connector ids, stages, reasons and reply codes come from the
//   policy and the protocol layer, never from client input (no addresses, no user names).
//   Rendered in the text exposition format by the admin server.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>
#include <string_view>

namespace kuberelay::relay {

class Metrics {
public:
  Metrics();

  prometheus::Registry& registry() { return *registry_; }
  std::string render() const;

  void connection(std::string_view connector, std::string_view result);
  prometheus::Gauge& active(std::string_view connector);
  void auth(std::string_view connector, std::string_view mechanism, std::string_view result);
  void relayDecision(std::string_view connector, bool allowed, std::string_view reason);
  void senderDecision(std::string_view connector, bool allowed, std::string_view reason);
  void reply(std::string_view connector, uint16_t code);
  void message(std::string_view connector, std::string_view result, uint64_t bytes);
  void forward(std::string_view target, double seconds, std::string_view errorKind);
  void policyLoaded(std::string_view version, bool ok);
  // Cluster mode only (a local relay exports none of these): call enableControlPlane() once
  // before the control-plane thread starts; the other two are safe from that thread.
  void enableControlPlane();
  void controlPlaneConnected(bool connected);
  void policyUpdate(bool applied);
  // Next-hop connections by smarthost and state (active: carrying a transaction; idle: pooled).
  prometheus::Gauge& upstream(std::string_view smarthost, std::string_view state);
  // A transaction started on a new or a pooled ("reused") next-hop connection.
  void upstreamSession(std::string_view smarthost, bool reused);
  void auditWouldRefuse(std::string_view connector, std::string_view stage,
                        std::string_view reason);

private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& connections_;
  prometheus::Family<prometheus::Gauge>& active_;
  prometheus::Family<prometheus::Counter>& auth_;
  prometheus::Family<prometheus::Counter>& relay_;
  prometheus::Family<prometheus::Counter>& sender_;
  prometheus::Family<prometheus::Counter>& replies_;
  prometheus::Family<prometheus::Counter>& messages_;
  prometheus::Family<prometheus::Histogram>& messageSize_;
  prometheus::Family<prometheus::Histogram>& forwardDuration_;
  prometheus::Family<prometheus::Counter>& forwardErrors_;
  prometheus::Family<prometheus::Gauge>& version_;
  prometheus::Family<prometheus::Counter>& reloads_;
  prometheus::Family<prometheus::Counter>& updates_;
  prometheus::Gauge* controlPlaneConnected_ = nullptr;
  prometheus::Family<prometheus::Counter>& audit_;
  prometheus::Family<prometheus::Gauge>& upstream_;
  prometheus::Family<prometheus::Counter>& upstreamSessions_;
  prometheus::Gauge* currentVersion_ = nullptr;
};

}  // namespace kuberelay::relay
