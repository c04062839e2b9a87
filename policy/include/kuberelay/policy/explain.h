// NAME
//   explain.h - "why would this client be refused?": one hypothetical session, every stage
// DESCRIPTION
//   Plays a session (connect, optional STARTTLS, AUTH, MAIL FROM, RCPT TO..., message size)
//   against a snapshot with tracing on, and stops at the first refusal. Used by
//   `kuberelay-policy explain` (manifests on disk) and by the relay's /explain admin endpoint
//   (the snapshot it enforces right now), so both give the same answers as a real session.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "kuberelay/policy/engine.h"

namespace kuberelay::policy {

struct ExplainRequest {
  IpAddress from;
  IpAddress toAddress;  // 0.0.0.0: any local address
  uint16_t toPort = 0;
  bool tls = false;
  std::optional<std::string> user;      // AUTH as this user
  std::optional<std::string> password;  // checked with crypt when given; else assumed right
  std::optional<std::string> mail;
  std::optional<uint64_t> size;
  std::vector<std::string> rcpts;
  std::optional<uint64_t> dataBytes;
};

struct ExplainStage {
  std::string stage;
  std::string input;
  bool allowed = false;
  std::string reply;
  std::string reason;
  std::string auditWouldRefuse;  // set when an Audit connector reported instead of refusing
  std::vector<TraceStep> trace;
};

struct ExplainResult {
  std::string policyVersion;
  std::string connector;
  bool allowed = false;
  std::vector<ExplainStage> stages;
  std::string toJson() const;
  std::string toText() const;
};

ExplainResult explainSession(const SnapshotPtr& snapshot, const ExplainRequest& request);

// A JSON string literal (quotes and escapes) for `s`.
std::string jsonString(std::string_view s);

}  // namespace kuberelay::policy
