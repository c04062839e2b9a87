// NAME
//   diagnostic.h - errors and warnings about API objects, with field paths
#pragma once

#include <string>

namespace kuberelay::policy {

struct ObjectRef {
  std::string kind;  // "ReceiveConnector", "SenderPermission", "AcceptedDomain", "Secret"
  std::string ns;
  std::string name;
  std::string source;  // where it was read from, when known
  friend bool operator==(const ObjectRef&, const ObjectRef&) = default;
};

struct Diagnostic {
  enum class Severity { Error, Warning };
  Severity severity = Severity::Error;
  ObjectRef object;
  std::string field;    // "spec.remoteIPRanges[2]"; empty for whole-object findings
  std::string reason;   // CamelCase, used as the condition reason / type ("OpenRelay", ...)
  std::string message;  // "\"10.0.0.300\" is not an IPv4 address"

  bool isError() const { return severity == Severity::Error; }
  // "ReceiveConnector mail/anon-relay: spec.remoteIPRanges[2]: "10.0.0.300" is not an IPv4
  // address"
  std::string toString() const;
};

}  // namespace kuberelay::policy
