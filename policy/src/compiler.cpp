#include "kuberelay/policy/compiler.h"

#include <algorithm>
#include <map>
#include <set>

#include "ascii.h"
#include "kuberelay/policy/analyzer.h"
#include "sha256.h"

namespace kuberelay::policy {

size_t CompileResult::errorCount() const {
  return static_cast<size_t>(std::count_if(diagnostics.begin(), diagnostics.end(),
                                           [](const Diagnostic& d) { return d.isError(); }));
}

size_t CompileResult::warningCount() const { return diagnostics.size() - errorCount(); }

ParsedUsers parseUsersSecret(std::string_view text) {
  ParsedUsers out;
  std::set<std::string, std::less<>> seen;
  size_t lineNo = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++lineNo;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) {
      line.remove_suffix(1);
    }
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    if (line.empty() || line.front() == '#') {
      if (end == text.size()) break;
      continue;
    }
    auto fail = [&](const std::string& why) {
      out.errors.push_back("line " + std::to_string(lineNo) + ": " + why);
    };
    size_t c1 = line.find(':');
    if (c1 == std::string_view::npos || c1 == 0) {
      fail("expected name:crypt-hash[:group1,group2]");
    } else {
      std::string_view name = line.substr(0, c1);
      std::string_view rest = line.substr(c1 + 1);
      // crypt hashes contain no ':'; the optional third field lists groups.
      size_t c2 = rest.find(':');
      std::string_view hash = rest.substr(0, c2);
      std::string_view groups =
          c2 == std::string_view::npos ? std::string_view{} : rest.substr(c2 + 1);
      bool knownScheme = hash.rfind("$6$", 0) == 0 || hash.rfind("$y$", 0) == 0 ||
                         hash.rfind("$2b$", 0) == 0 || hash.rfind("$2y$", 0) == 0 ||
                         hash.rfind("$5$", 0) == 0;
      if (name.find_first_of(" \t") != std::string_view::npos) {
        fail("user name " + quote(name) + " contains white space");
      } else if (!knownScheme) {
        fail("user " + quote(name) +
             ": the hash must be a crypt(3) hash ($6$, $y$ or $2b$), e.g. from openssl passwd -6");
      } else if (seen.count(lowerCopy(name))) {
        fail("user " + quote(name) + " is listed twice");
      } else {
        UserEntry u;
        u.name = std::string(name);
        u.hash = std::string(hash);
        u.nameIsAddress = name.find('@') != std::string_view::npos;
        size_t gpos = 0;
        while (gpos < groups.size()) {
          size_t comma = groups.find(',', gpos);
          if (comma == std::string_view::npos) comma = groups.size();
          std::string_view g = groups.substr(gpos, comma - gpos);
          if (!g.empty()) u.groups.emplace_back(g);
          gpos = comma + 1;
        }
        seen.insert(lowerCopy(name));
        out.users.push_back(std::move(u));
      }
    }
    if (end == text.size()) break;
  }
  std::sort(out.users.begin(), out.users.end(), [](const UserEntry& a, const UserEntry& b) {
    return lowerCopy(a.name) < lowerCopy(b.name);
  });
  return out;
}

class SnapshotBuilder {
public:
  SnapshotBuilder(const ResourceSet& in, const CompileOptions& options)
      : in_(in), options_(options), snapshot_(std::make_shared<Snapshot>()) {}

  CompileResult run() {
    result_.diagnostics = in_.diagnostics;
    indexSecrets();
    buildDomainTables();
    buildConnectors();
    applyPermissions();
    computeGrants();
    buildSelection();
    snapshot_->version_ = "sha256:" + sha256Hex(snapshot_->render(true)).substr(0, 16);
    if (options_.analyze) {
      auto warnings = analyze(*snapshot_);
      result_.diagnostics.insert(result_.diagnostics.end(), warnings.begin(), warnings.end());
    }
    result_.snapshot = snapshot_;
    return std::move(result_);
  }

private:
  using Key = std::pair<std::string, std::string>;  // namespace, name

  static ObjectRef refOf(const char* kind, const ObjectMeta& m) {
    return ObjectRef{kind, m.ns, m.name, m.source};
  }

  void error(ObjectRef ref, std::string field, std::string message,
             std::string reason = "InvalidReference") {
    result_.diagnostics.push_back({Diagnostic::Severity::Error, std::move(ref), std::move(field),
                                   std::move(reason), std::move(message)});
  }
  void warning(ObjectRef ref, std::string field, std::string reason, std::string message) {
    result_.diagnostics.push_back({Diagnostic::Severity::Warning, std::move(ref), std::move(field),
                                   std::move(reason), std::move(message)});
  }

  void indexSecrets() {
    for (const auto& s : in_.secrets) {
      if (s.meta.name.empty()) continue;
      secrets_.emplace(Key{s.meta.ns, s.meta.name}, &s);  // first one read wins
    }
  }

  const Secret* secret(const std::string& ns, const std::string& name) const {
    auto it = secrets_.find(Key{ns, name});
    return it == secrets_.end() ? nullptr : it->second;
  }

  void buildDomainTables() {
    std::vector<const AcceptedDomain*> domains;
    for (const auto& d : in_.domains) {
      if (!d.meta.invalid && !d.domain.empty()) domains.push_back(&d);
    }
    std::sort(domains.begin(), domains.end(), [](auto* a, auto* b) {
      return std::tie(a->meta.ns, a->meta.name) < std::tie(b->meta.ns, b->meta.name);
    });
    std::map<std::pair<std::string, std::string>, const AcceptedDomain*> seen;
    for (const AcceptedDomain* d : domains) {
      std::string pattern = (d->wildcard ? "*." : "") + d->domain;
      auto [it, inserted] = seen.emplace(std::make_pair(d->meta.ns, pattern), d);
      if (!inserted) {
        warning(refOf("AcceptedDomain", d->meta), "spec.domainName", "DuplicateAcceptedDomain",
                quote(pattern) + " is already accepted by AcceptedDomain " + it->second->meta.ns +
                    "/" + it->second->meta.name + "; this one is ignored");
        continue;
      }
      auto& table = tables_[d->meta.ns];
      if (!table) table = std::make_unique<DomainTable>();
      table->add(*d);
      snapshot_->domainLines_.push_back("domain " + d->meta.ns + " " + pattern + " " +
                                        toString(d->type) + " (" + d->meta.name + ")");
    }
  }

  void quarantine(CompiledConnector& c, const std::string& why) {
    if (!c.quarantined) {
      c.quarantined = true;
      c.quarantineReason = why;
    }
  }

  void buildConnectors() {
    // Connectors in a namespace without accepted domains share one empty table.
    snapshot_->domainTables_.push_back(std::make_unique<DomainTable>());
    const DomainTable* empty = snapshot_->domainTables_.back().get();
    std::vector<const ReceiveConnector*> list;
    for (const auto& rc : in_.connectors) {
      if (rc.meta.name.empty()) continue;
      if (!options_.relayPool.empty() && rc.relayPool != options_.relayPool) continue;
      list.push_back(&rc);
    }
    std::sort(list.begin(), list.end(), [](auto* a, auto* b) {
      return std::tie(a->meta.ns, a->meta.name, a->meta.source) <
             std::tie(b->meta.ns, b->meta.name, b->meta.source);
    });
    std::set<std::string> pools;
    auto& out = snapshot_->connectors_;
    for (const ReceiveConnector* rc : list) {
      std::string id = rc->meta.ns + "/" + rc->meta.name;
      if (!out.empty() && out.back().id == id) {
        error(refOf("ReceiveConnector", rc->meta), "metadata.name",
              "defined twice (also in " + out.back().spec.meta.source + "); this one is ignored",
              "Duplicate");
        continue;
      }
      if (rc->bindings.empty()) {
        // Without a binding the connector cannot even hold its door: it is left out.
        if (!rc->meta.invalid) {
          error(refOf("ReceiveConnector", rc->meta), "spec.bindings",
                "must list at least one binding", "InvalidField");
        }
        continue;
      }
      CompiledConnector c;
      c.index = static_cast<uint32_t>(out.size());
      c.id = id;
      c.spec = *rc;
      pools.insert(rc->relayPool);
      if (rc->meta.invalid) quarantine(c, "the object has invalid fields");
      checkCrossFieldRules(c);
      resolveSecrets(c);
      if (!rc->banner.empty()) {
        c.bannerText = rc->banner;
      } else {
        c.bannerText = (rc->fqdn.empty() ? "" : rc->fqdn + " ") + "KubeRelay ESMTP service ready";
        c.bannerNeedsHostName = rc->fqdn.empty();
      }
      auto table = tables_.find(rc->meta.ns);
      c.domains = table == tables_.end() ? empty : table->second.get();
      out.push_back(std::move(c));
    }
    snapshot_->pools_.assign(pools.begin(), pools.end());
    for (auto& [ns, table] : tables_) snapshot_->domainTables_.push_back(std::move(table));
    tables_.clear();
  }

  // The CRD's CEL rules, again: local mode has no API server to enforce them.
  void checkCrossFieldRules(CompiledConnector& c) {
    const ReceiveConnector& s = c.spec;
    ObjectRef ref = refOf("ReceiveConnector", s.meta);
    auto rule = [&](bool violated, const char* field, const std::string& message) {
      if (!violated) return;
      error(ref, field, message, "InvalidSpec");
      quarantine(c, std::string(field) + ": " + message);
    };
    using namespace auth_mechanism;
    const uint8_t m = s.authMechanisms;
    rule((m & kBasicAuthRequireTls) && (!(m & kBasicAuth) || !(m & kTls)), "spec.authMechanisms",
         "BasicAuthRequireTLS needs BasicAuth and Tls");
    rule((m & kExternalAuthoritative) && !(s.permissionGroups & permission_group::kExchangeServers),
         "spec.permissionGroups",
         "ExternalAuthoritative needs the ExchangeServers permission group");
    rule((m & kExternalAuthoritative) && (m & (kBasicAuth | kBasicAuthRequireTls)),
         "spec.authMechanisms", "ExternalAuthoritative can be combined only with Tls");
    rule((m & kTls) && s.tlsSecretName.empty(), "spec.tls", "Tls needs spec.tls.secretName");
    rule(s.tlsImplicit && !(m & kTls), "spec.authMechanisms",
         "tls.implicit needs the Tls mechanism");
    rule(s.requireTLS && !(m & kTls), "spec.requireTLS", "requireTLS needs the Tls mechanism");
    rule((m & kBasicAuth) && s.usersSecretName.empty(), "spec.users",
         "BasicAuth needs spec.users.secretName");
    const Forwarding& f = s.forwarding;
    rule(f.smarthosts.empty() == f.dropDirectory.empty(), "spec.forwarding",
         "set exactly one of smarthosts and dropDirectory");
    rule(s.limits.maxInboundConnectionPerSource > s.limits.maxInboundConnection,
         "spec.limits.maxInboundConnectionPerSource", "must not exceed maxInboundConnection");
    rule(s.limits.connectionTimeout <= s.limits.connectionInactivityTimeout,
         "spec.limits.connectionTimeout", "must be longer than connectionInactivityTimeout");
  }

  void resolveSecrets(CompiledConnector& c) {
    const ReceiveConnector& s = c.spec;
    ObjectRef ref = refOf("ReceiveConnector", s.meta);
    auto missing = [&](const char* field, const std::string& why) {
      error(ref, field, why);
      quarantine(c, std::string(field) + ": " + why);
    };
    if (!s.tlsSecretName.empty()) {
      const Secret* sec = secret(s.meta.ns, s.tlsSecretName);
      if (!sec) {
        missing("spec.tls.secretName", "Secret " + quote(s.tlsSecretName) + " not found");
      } else {
        auto crt = sec->data.find("tls.crt"), key = sec->data.find("tls.key");
        if (crt == sec->data.end() || key == sec->data.end()) {
          missing("spec.tls.secretName",
                  "Secret " + quote(s.tlsSecretName) + " has no tls.crt and tls.key");
        } else if (crt->second.find("-----BEGIN CERTIFICATE-----") == std::string::npos ||
                   key->second.find("PRIVATE KEY-----") == std::string::npos) {
          missing("spec.tls.secretName",
                  "Secret " + quote(s.tlsSecretName) + ": tls.crt/tls.key are not PEM");
        } else {
          c.tlsCertificatePem = crt->second;
          c.tlsPrivateKeyPem = key->second;
        }
      }
    }
    if (!s.usersSecretName.empty()) {
      const Secret* sec = secret(s.meta.ns, s.usersSecretName);
      if (!sec) {
        missing("spec.users.secretName", "Secret " + quote(s.usersSecretName) + " not found");
      } else if (auto it = sec->data.find("users"); it == sec->data.end()) {
        missing("spec.users.secretName",
                "Secret " + quote(s.usersSecretName) + " has no key \"users\"");
      } else {
        ParsedUsers parsed = parseUsersSecret(it->second);
        for (const auto& e : parsed.errors) {
          // Reported on the Secret; the line is skipped, so that user cannot log in.
          if (!reportedUserErrors_.count(Key{s.meta.ns, s.usersSecretName})) {
            error(refOf("Secret", sec->meta), "data.users", e, "InvalidUsers");
          }
        }
        reportedUserErrors_.insert(Key{s.meta.ns, s.usersSecretName});
        c.users = std::move(parsed.users);
        for (uint32_t i = 0; i < c.users.size(); ++i) c.userIndex.emplace(c.users[i].name, i);
      }
    }
    if (!s.forwarding.credentialsSecretName.empty()) {
      const Secret* sec = secret(s.meta.ns, s.forwarding.credentialsSecretName);
      if (!sec) {
        missing("spec.forwarding.credentialsSecretName",
                "Secret " + quote(s.forwarding.credentialsSecretName) + " not found");
      } else {
        auto u = sec->data.find("username"), p = sec->data.find("password");
        if (u == sec->data.end() || p == sec->data.end()) {
          missing("spec.forwarding.credentialsSecretName",
                  "Secret " + quote(s.forwarding.credentialsSecretName) +
                      " needs keys username and password");
        } else {
          c.forwardUsername = u->second;
          c.forwardPassword = p->second;
        }
      }
    }
    if (!s.forwarding.caSecretName.empty()) {
      const Secret* sec = secret(s.meta.ns, s.forwarding.caSecretName);
      if (!sec) {
        missing("spec.forwarding.caSecretName",
                "Secret " + quote(s.forwarding.caSecretName) + " not found");
      } else if (auto ca = sec->data.find("ca.crt");
                 ca == sec->data.end() ||
                 ca->second.find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
        missing("spec.forwarding.caSecretName",
                "Secret " + quote(s.forwarding.caSecretName) + " has no PEM certificate in ca.crt");
      } else {
        c.forwardCaPem = ca->second;
      }
    }
    if (!s.proxyTrustedRanges.empty()) {
      for (uint32_t i = 0; i < s.proxyTrustedRanges.size(); ++i) {
        c.proxyTrusted.add(s.proxyTrustedRanges[i], i);
      }
      c.proxyTrusted.build();
    }
  }

  CompiledConnector* connectorFor(const std::string& ns, const std::string& name) {
    auto it = connectorIndex_.find(Key{ns, name});
    return it == connectorIndex_.end() ? nullptr : &snapshot_->connectors_[it->second];
  }

  bool connectorExistsAnyPool(const std::string& ns, const std::string& name) const {
    return allConnectorNames_.count(Key{ns, name}) > 0;
  }

  void applyPermissions() {
    for (const auto& c : snapshot_->connectors_) {
      connectorIndex_.emplace(Key{c.spec.meta.ns, c.spec.meta.name}, c.index);
    }
    for (const auto& rc : in_.connectors) allConnectorNames_.insert(Key{rc.meta.ns, rc.meta.name});
    std::vector<const SenderPermission*> list;
    for (const auto& p : in_.permissions) {
      if (!p.meta.name.empty()) list.push_back(&p);
    }
    std::sort(list.begin(), list.end(), [](auto* a, auto* b) {
      return std::tie(a->meta.ns, a->meta.name) < std::tie(b->meta.ns, b->meta.name);
    });
    for (const SenderPermission* p : list) {
      if (p->connector.empty()) continue;  // already reported by the decoder
      CompiledConnector* c = connectorFor(p->meta.ns, p->connector);
      if (!c) {
        if (!connectorExistsAnyPool(p->meta.ns, p->connector)) {
          error(refOf("SenderPermission", p->meta), "spec.connector",
                "ReceiveConnector " + quote(p->connector) + " not found in namespace " +
                    quote(p->meta.ns));
        }
        continue;
      }
      if (p->meta.invalid) {
        if (p->deny) {
          quarantine(*c, "SenderPermission " + p->meta.ns + "/" + p->meta.name +
                             " is a deny entry with invalid fields");
        }
        continue;
      }
      permissions_[c->index].push_back(p);
    }
  }

  static bool matchesUser(const SenderPermission& p, const UserEntry& u) {
    switch (p.principal) {
      case PrincipalKind::AuthenticatedUsers:
        return true;
      case PrincipalKind::User:
        return iequals(p.name, u.name);
      case PrincipalKind::Group:
        return std::any_of(u.groups.begin(), u.groups.end(),
                           [&](const std::string& g) { return iequals(g, p.name); });
      default:
        return false;
    }
  }

  static void addPermission(Grant& g, const SenderPermission& p) {
    std::string source = "SenderPermission " + p.meta.ns + "/" + p.meta.name;
    if (p.deny) {
      if (p.sendAs.empty()) {
        g.denied |= p.rights;
      } else {
        g.sendAs.deny.insert(g.sendAs.deny.end(), p.sendAs.begin(), p.sendAs.end());
      }
      g.sources.push_back({p.rights, true, source});
    } else {
      g.rights |= p.rights;
      g.sendAs.allow.insert(g.sendAs.allow.end(), p.sendAs.begin(), p.sendAs.end());
      g.sources.push_back({p.rights, false, source});
    }
  }

  static void addGroup(Grant& g, Rights rights, const char* group) {
    g.rights |= rights;
    g.sources.push_back({rights, false, std::string("permission group ") + group});
  }

  void computeGrants() {
    using namespace permission_group;
    for (auto& c : snapshot_->connectors_) {
      const auto& perms = permissions_[c.index];
      if (c.hasGroup(kAnonymousUsers))
        addGroup(c.anonymous, group_rights::kAnonymousUsers, "AnonymousUsers");
      if (c.hasMechanism(auth_mechanism::kExternalAuthoritative) && c.hasGroup(kExchangeServers)) {
        addGroup(c.externallySecured, group_rights::kExternallySecured,
                 "ExchangeServers (externally secured)");
      }
      if (c.hasGroup(kPartners)) addGroup(c.partners, group_rights::kPartners, "Partners");
      for (const SenderPermission* p : perms) {
        if (p->principal == PrincipalKind::Anonymous) addPermission(c.anonymous, *p);
        if (p->principal == PrincipalKind::ExternallySecured)
          addPermission(c.externallySecured, *p);
        if (p->principal == PrincipalKind::Partners) addPermission(c.partners, *p);
      }
      for (auto& u : c.users) {
        if (c.hasGroup(kExchangeUsers))
          addGroup(u.grant, group_rights::kExchangeUsers, "ExchangeUsers");
        auto inGroup = [&](std::string_view group) {
          return std::any_of(u.groups.begin(), u.groups.end(),
                             [&](const std::string& g) { return iequals(g, group); });
        };
        if (c.hasGroup(kExchangeServers) && inGroup(kExchangeServersGroup)) {
          addGroup(u.grant, group_rights::kExchangeServers, "ExchangeServers");
        }
        if (c.hasGroup(kExchangeLegacyServers) && inGroup(kExchangeLegacyGroup)) {
          addGroup(u.grant, group_rights::kExchangeLegacyServers, "ExchangeLegacyServers");
        }
        for (const SenderPermission* p : perms) {
          if (matchesUser(*p, u)) addPermission(u.grant, *p);
        }
      }
    }
  }

  void buildSelection() {
    // port -> local address (nullopt = any) -> group
    std::map<uint16_t, std::map<std::optional<IpAddress>, Snapshot::BindingGroup>> groups;
    std::map<Binding, Listener> listeners;
    for (auto& c : snapshot_->connectors_) {
      if (!c.spec.enabled) continue;
      for (const Binding& b : c.spec.bindings) {
        auto& group = groups[b.port][b.address];
        for (const IpRange& r : c.spec.remoteIPRanges) group.inRange.add(r, c.index);
        if (c.spec.ipRestrictionMode == IpRestrictionMode::AnonymousOnly) {
          group.anonymousOnly.push_back(c.index);
        }
        auto [it, inserted] = listeners.emplace(b, Listener{b, c.spec.tlsImplicit, {}});
        if (!inserted && it->second.implicitTls != c.spec.tlsImplicit) {
          std::string message =
              "binding " + b.toString() + " is " +
              (it->second.implicitTls ? "implicit TLS" : "plain/STARTTLS") + " on connector " +
              snapshot_->connectors_[it->second.connectors[0]].id + "; one port cannot be both";
          error(refOf("ReceiveConnector", c.spec.meta), "spec.tls.implicit", message,
                "BindingConflict");
          quarantine(c, message);
        }
        it->second.connectors.push_back(c.index);
      }
    }
    for (auto& [port, byAddress] : groups) {
      Snapshot::PortIndex index;
      for (auto& [address, group] : byAddress) {
        group.inRange.build();
        if (address) {
          index.specific.emplace_back(*address, std::move(group));
        } else {
          index.any = std::move(group);
        }
      }
      snapshot_->ports_.emplace(port, std::move(index));
    }
    for (auto& [binding, listener] : listeners)
      snapshot_->listeners_.push_back(std::move(listener));
  }

  const ResourceSet& in_;
  const CompileOptions& options_;
  std::shared_ptr<Snapshot> snapshot_;
  CompileResult result_;
  std::map<Key, const Secret*> secrets_;
  std::map<std::string, std::unique_ptr<DomainTable>> tables_;
  std::map<uint32_t, std::vector<const SenderPermission*>> permissions_;
  std::set<Key> reportedUserErrors_;
  std::map<Key, uint32_t> connectorIndex_;
  std::set<Key> allConnectorNames_;
};

CompileResult compile(const ResourceSet& resources, const CompileOptions& options) {
  return SnapshotBuilder(resources, options).run();
}

}  // namespace kuberelay::policy
