// NAME
//   model.h - the KubeRelay API objects as the compiler sees them
// DESCRIPTION
//   ReceiveConnector, SenderPermission and AcceptedDomain (group smtp.kuberelay.io/v1alpha1)
//   and the Secrets they reference, decoded from YAML/JSON manifests or from the Kubernetes
//   API. Values are already typed and defaulted; an object that failed to decode carries
//   `meta.invalid` and whatever parts could be read (see compiler.h for what happens to it).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "kuberelay/policy/diagnostic.h"
#include "kuberelay/policy/ip.h"
#include "kuberelay/policy/rights.h"

namespace kuberelay::policy {

struct ObjectMeta {
  std::string ns;
  std::string name;
  int64_t generation = 0;
  std::string uid;
  std::string resourceVersion;
  std::string source;    // "file.yaml#2" or "kube-apiserver"
  bool invalid = false;  // decoding reported an error for this object
};

enum class IpRestrictionMode : uint8_t { AllClients, AnonymousOnly };
enum class ForwardTls : uint8_t { None, Opportunistic, Required };
enum class ProtocolLogging : uint8_t { None, Verbose };
enum class Enforcement : uint8_t { Enforce, Audit };
enum class DomainType : uint8_t { Authoritative, InternalRelay, ExternalRelay };

// Bit sets, names as in Exchange.
namespace auth_mechanism {
inline constexpr uint8_t kTls = 1;
inline constexpr uint8_t kBasicAuth = 2;
inline constexpr uint8_t kBasicAuthRequireTls = 4;
inline constexpr uint8_t kExternalAuthoritative = 8;
}  // namespace auth_mechanism

namespace permission_group {
inline constexpr uint8_t kAnonymousUsers = 1;
inline constexpr uint8_t kExchangeUsers = 2;
inline constexpr uint8_t kExchangeServers = 4;
inline constexpr uint8_t kExchangeLegacyServers = 8;
inline constexpr uint8_t kPartners = 16;
inline constexpr uint8_t kCustom = 32;
}  // namespace permission_group

struct Binding {
  std::optional<IpAddress> address;  // nullopt: any local address (0.0.0.0 or [::])
  uint16_t port = 0;
  bool anyV6 = false;  // written as [::] (matters for the listener only)
  std::string toString() const;
  friend auto operator<=>(const Binding&, const Binding&) = default;
  friend bool operator==(const Binding&, const Binding&) = default;
};

using Millis = std::chrono::milliseconds;

// Exchange's defaults (New-ReceiveConnector), see exchange-semantics.md §1.1.
struct Limits {
  uint64_t maxMessageSize = 36ull * 1024 * 1024;
  uint64_t maxHeaderSize = 256ull * 1024;
  uint32_t maxRecipientsPerMessage = 200;
  uint32_t maxHopCount = 30;
  uint32_t maxInboundConnection = 5000;
  uint32_t maxInboundConnectionPerSource = 20;
  Millis connectionTimeout{10 * 60 * 1000};
  Millis connectionInactivityTimeout{5 * 60 * 1000};
  uint32_t maxProtocolErrors = 5;
  uint32_t maxLogonFailures = 3;
  Millis tarpitInterval{5000};
  Millis authTarpitInterval{5000};
  uint32_t messageRateLimit = 0;  // per source IP per minute; 0 = unlimited
};

struct Forwarding {
  std::vector<std::string> smarthosts;  // "host:port", tried in order
  ForwardTls tls = ForwardTls::Opportunistic;
  std::string credentialsSecretName;
  std::string caSecretName;  // key ca.crt: extra trust anchors for tls Required
  std::string dropDirectory;
};

struct ReceiveConnector {
  ObjectMeta meta;
  bool enabled = true;
  std::string relayPool = "default";
  std::vector<Binding> bindings;
  std::vector<IpRange> remoteIPRanges;  // defaulted to all IPv4 + all IPv6
  IpRestrictionMode ipRestrictionMode = IpRestrictionMode::AllClients;
  uint8_t authMechanisms = 0;
  uint8_t permissionGroups = 0;
  bool requireTLS = false;
  std::string fqdn;
  std::string banner;
  std::string tlsSecretName;
  bool tlsImplicit = false;
  std::string usersSecretName;
  Limits limits;
  std::vector<IpRange> proxyTrustedRanges;
  bool proxyProtocol = false;
  Forwarding forwarding;
  ProtocolLogging protocolLogging = ProtocolLogging::None;
  Enforcement enforcement = Enforcement::Enforce;

  // Every Secret name field (some may be empty): what an operator must watch for this object.
  std::array<const std::string*, 4> secretNameFields() const {
    return {&tlsSecretName, &usersSecretName, &forwarding.credentialsSecretName,
            &forwarding.caSecretName};
  }
};

enum class PrincipalKind : uint8_t {
  Anonymous,           // NT AUTHORITY\ANONYMOUS LOGON
  AuthenticatedUsers,  // NT AUTHORITY\Authenticated Users
  User,
  Group,
  ExternallySecured,  // MS Exchange\Externally Secured Servers
  Partners,           // MS Exchange\Partner Servers
};

struct SenderPermission {
  ObjectMeta meta;
  std::string connector;
  PrincipalKind principal = PrincipalKind::Anonymous;
  std::string name;  // User or Group name
  Rights rights = 0;
  bool deny = false;
  std::vector<std::string> sendAs;  // lower-cased patterns: user@dom, *@dom, *@*.dom
};

struct AcceptedDomain {
  ObjectMeta meta;
  std::string domain;     // lower case, without "*." and without a trailing dot
  bool wildcard = false;  // "*.domain": the domain and all its subdomains
  DomainType type = DomainType::Authoritative;
};

struct Secret {
  ObjectMeta meta;
  std::string type;                         // "Opaque", "kubernetes.io/tls", ...
  std::map<std::string, std::string> data;  // decoded bytes
};

// Everything read from one source of truth (a manifest directory or the API server's caches).
struct ResourceSet {
  std::vector<ReceiveConnector> connectors;
  std::vector<SenderPermission> permissions;
  std::vector<AcceptedDomain> domains;
  std::vector<Secret> secrets;
  std::vector<Diagnostic> diagnostics;  // decoding errors (objects are still listed, invalid)
};

const char* toString(PrincipalKind kind);
const char* toString(DomainType type);
const char* toString(IpRestrictionMode mode);
std::string authMechanismsToString(uint8_t mechanisms);
std::string permissionGroupsToString(uint8_t groups);

}  // namespace kuberelay::policy
