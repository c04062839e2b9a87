// NAME
//   snapshot.h - the compiled, immutable policy a relay enforces
// DESCRIPTION
//   A Snapshot is built once by compile() and then only read, from any number of threads.
//   Sessions hold a shared_ptr to the snapshot they started with. Everything a decision needs
//   is precomputed here: each principal's rights on each connector, the accepted-domain table
//   of each namespace, and the connector-selection index. The version is a content hash of a
//   canonical rendering, so the same objects in any order give the same version.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "kuberelay/policy/ip.h"
#include "kuberelay/policy/model.h"
#include "kuberelay/policy/rights.h"

namespace kuberelay::policy {

// Case-insensitive hashing for domains and user names (ASCII).
struct CaseInsensitiveHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const;
};
struct CaseInsensitiveEqual {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const;
};

struct SendAsRules {
  std::vector<std::string> allow;  // lower-cased patterns
  std::vector<std::string> deny;
  bool empty() const { return allow.empty() && deny.empty(); }
};

// Where a principal's rights came from, for explanations ("group AnonymousUsers",
// "SenderPermission mail/relay-anon").
struct Grant {
  struct Source {
    Rights rights = 0;
    bool deny = false;
    std::string name;  // "permission group AnonymousUsers", "SenderPermission mail/relay-anon"
  };
  Rights rights = 0;
  Rights denied = 0;
  SendAsRules sendAs;
  std::vector<Source> sources;
  Rights effective() const { return rights & ~denied; }
  // The allow sources that grant any of `which` ("permission group ExchangeUsers; ..."), for
  // explanations; "no permission group or SenderPermission" when none does.
  std::string grantedBy(Rights which) const;
};

struct UserEntry {
  std::string name;  // as written in the Secret
  std::string hash;  // crypt(3) hash
  std::vector<std::string> groups;
  bool nameIsAddress = false;  // "user@domain": the user may send as this address
  Grant grant;                 // AuthenticatedUsers + User + Group grants on this connector
};

struct DomainMatch {
  DomainType type;
  std::string_view pattern;  // "example.com" or "*.example.com"
  std::string_view object;   // "ns/name" of the AcceptedDomain
};

class DomainTable {
public:
  void add(const AcceptedDomain& domain);
  // Exact match first, then the longest matching wildcard. Case-insensitive; one trailing dot
  // is ignored.
  std::optional<DomainMatch> lookup(std::string_view domain) const;
  bool empty() const { return exact_.empty() && wildcard_.empty(); }
  size_t size() const { return exact_.size() + wildcard_.size(); }

private:
  struct Entry {
    DomainType type;
    std::string pattern;
    std::string object;
  };
  std::unordered_map<std::string, Entry, CaseInsensitiveHash, CaseInsensitiveEqual> exact_;
  std::unordered_map<std::string, Entry, CaseInsensitiveHash, CaseInsensitiveEqual> wildcard_;
};

struct CompiledConnector {
  uint32_t index = 0;     // position in Snapshot::connectors(), sorted by namespace/name
  std::string id;         // "namespace/name"
  ReceiveConnector spec;  // decoded object (meta + spec), defaults applied
  bool quarantined =
      false;  // invalid: keeps its door, answers 421 4.3.5 (fail closed, temporarily)
  std::string quarantineReason;

  std::string bannerText;  // after "220 "
  // The default banner without an fqdn: the relay puts its own host name first (RFC 5321 4.2
  // wants the server's name at the start of the greeting).
  bool bannerNeedsHostName = false;
  Grant anonymous;
  Grant externallySecured;  // only held by in-range clients of ExternalAuthoritative connectors
  Grant partners;
  std::vector<UserEntry> users;
  std::unordered_map<std::string, uint32_t, CaseInsensitiveHash, CaseInsensitiveEqual> userIndex;
  const DomainTable* domains = nullptr;
  RangeIndex proxyTrusted;

  // Secret material the relay needs (never logged).
  std::string tlsCertificatePem;
  std::string tlsPrivateKeyPem;
  std::string forwardUsername;
  std::string forwardPassword;
  std::string forwardCaPem;  // PEM bundle from forwarding.caSecretName

  bool hasMechanism(uint8_t m) const { return (spec.authMechanisms & m) != 0; }
  bool hasGroup(uint8_t g) const { return (spec.permissionGroups & g) != 0; }
  bool offersStartTls() const;
  const UserEntry* findUser(std::string_view name) const;
};

struct ConnectionFacts {
  IpAddress localAddress;
  uint16_t localPort = 0;
  IpAddress remoteAddress;
};

struct Selection {
  const CompiledConnector* connector = nullptr;
  bool inRemoteRange = false;  // false only for AnonymousOnly connectors serving off-list clients
  bool specificBinding = false;
};

// A socket the relay must listen on.
struct Listener {
  Binding binding;
  bool implicitTls = false;
  std::vector<uint32_t> connectors;  // indexes of the connectors bound here
  friend bool operator==(const Listener&, const Listener&) = default;
};

class Snapshot {
public:
  const std::string& version() const { return version_; }
  std::span<const CompiledConnector> connectors() const { return connectors_; }
  const CompiledConnector* find(std::string_view ns, std::string_view name) const;
  // Exchange's rule: the binding (a specific local address before 0.0.0.0), then the most
  // specific remote range; AnonymousOnly connectors also serve off-list clients, ranked below
  // every in-range match on the same binding.
  Selection select(const ConnectionFacts& facts) const;
  const std::vector<Listener>& listeners() const { return listeners_; }
  // Canonical rendering (secrets redacted unless asked for) that the version hashes.
  std::string render(bool includeSecrets = false) const;
  std::span<const std::string> relayPools() const { return pools_; }

private:
  friend class SnapshotBuilder;
  struct BindingGroup {
    RangeIndex inRange;                   // ids are connector indexes
    std::vector<uint32_t> anonymousOnly;  // AnonymousOnly connectors, by index
  };
  struct PortIndex {
    std::vector<std::pair<IpAddress, BindingGroup>> specific;  // sorted by address
    std::optional<BindingGroup> any;
  };
  std::string version_;
  std::vector<CompiledConnector> connectors_;
  std::vector<std::unique_ptr<DomainTable>> domainTables_;
  std::unordered_map<uint16_t, PortIndex> ports_;
  std::vector<Listener> listeners_;
  std::vector<std::string> pools_;
  std::vector<std::string> domainLines_;  // "domain ns example.com Authoritative (ns/name)"
};

using SnapshotPtr = std::shared_ptr<const Snapshot>;

}  // namespace kuberelay::policy
