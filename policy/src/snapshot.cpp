#include "kuberelay/policy/snapshot.h"

#include <algorithm>

#include "ascii.h"
#include "sha256.h"
#include "units.h"

namespace kuberelay::policy {

size_t CaseInsensitiveHash::operator()(std::string_view s) const {
  // FNV-1a over lower-cased bytes.
  uint64_t h = 1469598103934665603ull;
  for (char c : s) {
    h ^= static_cast<unsigned char>(asciiLower(c));
    h *= 1099511628211ull;
  }
  return static_cast<size_t>(h);
}

bool CaseInsensitiveEqual::operator()(std::string_view a, std::string_view b) const {
  return iequals(a, b);
}

void DomainTable::add(const AcceptedDomain& d) {
  auto& table = d.wildcard ? wildcard_ : exact_;
  std::string pattern = d.wildcard ? "*." + d.domain : d.domain;
  table.emplace(d.domain, Entry{d.type, std::move(pattern), d.meta.ns + "/" + d.meta.name});
}

std::optional<DomainMatch> DomainTable::lookup(std::string_view domain) const {
  if (!domain.empty() && domain.back() == '.') domain.remove_suffix(1);
  if (domain.empty()) return std::nullopt;
  if (auto it = exact_.find(domain); it != exact_.end()) {
    return DomainMatch{it->second.type, it->second.pattern, it->second.object};
  }
  // "*.example.com" covers example.com itself (Exchange: "a domain with subdomains"),
  // a.example.com and a.b.example.com; the longest suffix wins.
  if (auto it = wildcard_.find(domain); it != wildcard_.end()) {
    return DomainMatch{it->second.type, it->second.pattern, it->second.object};
  }
  for (size_t dot = domain.find('.'); dot != std::string_view::npos;
       dot = domain.find('.', dot + 1)) {
    if (auto it = wildcard_.find(domain.substr(dot + 1)); it != wildcard_.end()) {
      return DomainMatch{it->second.type, it->second.pattern, it->second.object};
    }
  }
  return std::nullopt;
}

std::string Grant::grantedBy(Rights which) const {
  std::string out;
  for (const auto& src : sources) {
    if (src.deny || (src.rights & which) == 0) continue;
    out += (out.empty() ? "" : "; ") + src.name;
  }
  return out.empty() ? "no permission group or SenderPermission" : out;
}

bool CompiledConnector::offersStartTls() const {
  return hasMechanism(auth_mechanism::kTls) && !tlsCertificatePem.empty() && !spec.tlsImplicit;
}

const UserEntry* CompiledConnector::findUser(std::string_view name) const {
  auto it = userIndex.find(name);
  return it == userIndex.end() ? nullptr : &users[it->second];
}

const CompiledConnector* Snapshot::find(std::string_view ns, std::string_view name) const {
  for (const auto& c : connectors_) {
    if (c.spec.meta.ns == ns && c.spec.meta.name == name) return &c;
  }
  return nullptr;
}

Selection Snapshot::select(const ConnectionFacts& facts) const {
  auto port = ports_.find(facts.localPort);
  if (port == ports_.end()) return {};
  const PortIndex& index = port->second;
  auto tryGroup = [&](const BindingGroup& group, bool specific) -> Selection {
    if (auto id = group.inRange.lookup(facts.remoteAddress)) {
      return {&connectors_[*id], true, specific};
    }
    if (!group.anonymousOnly.empty()) {
      return {&connectors_[group.anonymousOnly.front()], false, specific};
    }
    return {};
  };
  auto it = std::lower_bound(index.specific.begin(), index.specific.end(), facts.localAddress,
                             [](const auto& entry, const IpAddress& a) { return entry.first < a; });
  if (it != index.specific.end() && it->first == facts.localAddress) {
    if (auto s = tryGroup(it->second, true); s.connector) return s;
  }
  if (index.any) return tryGroup(*index.any, false);
  return {};
}

namespace {

std::string digest(std::string_view secret) {
  return secret.empty() ? "-" : "sha256:" + sha256Hex(secret).substr(0, 16);
}

void renderGrant(std::string& out, const char* name, const Grant& g) {
  out += "  grant ";
  out += name;
  out += ": " + rightsToString(g.effective());
  if (g.denied) out += " (denied: " + rightsToString(g.denied) + ")";
  for (const auto& p : g.sendAs.allow) out += " sendAs=" + p;
  for (const auto& p : g.sendAs.deny) out += " denySendAs=" + p;
  out += "\n";
}

}  // namespace

std::string Snapshot::render(bool includeSecrets) const {
  std::string out;
  for (const auto& c : connectors_) {
    const ReceiveConnector& s = c.spec;
    out += "connector " + c.id + "\n";
    if (c.quarantined) out += "  quarantined: " + c.quarantineReason + "\n";
    out += "  enabled: " + std::string(s.enabled ? "true" : "false") + "\n";
    out += "  relayPool: " + s.relayPool + "\n";
    out += "  bindings:";
    for (const auto& b : s.bindings) out += " " + b.toString();
    out += "\n  remoteIPRanges:";
    for (const auto& r : s.remoteIPRanges) out += " " + r.toString();
    out += "\n  ipRestrictionMode: " + std::string(toString(s.ipRestrictionMode)) + "\n";
    out += "  authMechanisms: " + authMechanismsToString(s.authMechanisms) + "\n";
    out += "  permissionGroups: " + permissionGroupsToString(s.permissionGroups) + "\n";
    out += "  requireTLS: " + std::string(s.requireTLS ? "true" : "false") + "\n";
    out += "  banner: " + c.bannerText + "\n";
    out += "  fqdn: " + s.fqdn + "\n";
    out += "  tls: " + (s.tlsSecretName.empty() ? std::string("-") : s.tlsSecretName) +
           (s.tlsImplicit ? " implicit" : "") + " cert=" + digest(c.tlsCertificatePem) +
           " key=" + (includeSecrets ? digest(c.tlsPrivateKeyPem) : "<redacted>") + "\n";
    const Limits& l = s.limits;
    out += "  limits: maxMessageSize=" + formatBytes(l.maxMessageSize) +
           " maxHeaderSize=" + formatBytes(l.maxHeaderSize) +
           " maxRecipientsPerMessage=" + std::to_string(l.maxRecipientsPerMessage) +
           " maxHopCount=" + std::to_string(l.maxHopCount) +
           " maxInboundConnection=" + std::to_string(l.maxInboundConnection) +
           " maxInboundConnectionPerSource=" + std::to_string(l.maxInboundConnectionPerSource) +
           " connectionTimeout=" + formatDuration(l.connectionTimeout) +
           " connectionInactivityTimeout=" + formatDuration(l.connectionInactivityTimeout) +
           " maxProtocolErrors=" + std::to_string(l.maxProtocolErrors) +
           " maxLogonFailures=" + std::to_string(l.maxLogonFailures) +
           " tarpitInterval=" + formatDuration(l.tarpitInterval) +
           " authTarpitInterval=" + formatDuration(l.authTarpitInterval) +
           " messageRateLimit=" + std::to_string(l.messageRateLimit) + "\n";
    if (s.proxyProtocol) {
      out += "  proxyProtocol:";
      for (const auto& r : s.proxyTrustedRanges) out += " " + r.toString();
      out += "\n";
    }
    const Forwarding& f = s.forwarding;
    out += "  forwarding:";
    for (const auto& h : f.smarthosts) out += " smarthost=" + h;
    if (!f.dropDirectory.empty()) out += " dropDirectory=" + f.dropDirectory;
    out += std::string(" tls=") + (f.tls == ForwardTls::None            ? "None"
                                   : f.tls == ForwardTls::Opportunistic ? "Opportunistic"
                                                                        : "Required");
    if (!f.credentialsSecretName.empty()) {
      out += " credentials=" + f.credentialsSecretName + " user=" + c.forwardUsername +
             " password=" + (includeSecrets ? digest(c.forwardPassword) : "<redacted>");
    }
    if (!f.caSecretName.empty()) out += " ca=" + f.caSecretName + ":" + digest(c.forwardCaPem);
    out += "\n";
    out += std::string("  protocolLogging: ") +
           (s.protocolLogging == ProtocolLogging::Verbose ? "Verbose" : "None") + "\n";
    out += std::string("  enforcement: ") +
           (s.enforcement == Enforcement::Audit ? "Audit" : "Enforce") + "\n";
    renderGrant(out, "Anonymous", c.anonymous);
    if (c.hasMechanism(auth_mechanism::kExternalAuthoritative)) {
      renderGrant(out, "ExternallySecured", c.externallySecured);
    }
    if (c.hasGroup(permission_group::kPartners)) renderGrant(out, "Partners", c.partners);
    for (const auto& u : c.users) {
      out += "  user " + u.name;
      if (!u.groups.empty()) {
        out += " groups=";
        for (size_t i = 0; i < u.groups.size(); ++i) out += (i ? "," : "") + u.groups[i];
      }
      out += " hash=" + (includeSecrets ? digest(u.hash) : std::string("<redacted>")) + "\n";
      renderGrant(out, ("User " + u.name).c_str(), u.grant);
    }
  }
  for (const auto& line : domainLines_) out += line + "\n";
  return out;
}

}  // namespace kuberelay::policy
