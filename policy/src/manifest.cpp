// Decoding of manifests (YAML or JSON, parsed by libyaml: yaml_tree.h). Strict: an unknown field is
// an error, because a typo such as "remoteIpRanges" silently ignored would widen a connector to
// every address.
#include "kuberelay/policy/manifest.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <initializer_list>
#include <sstream>

#include "ascii.h"
#include "kuberelay/policy/yaml_tree.h"
#include "units.h"

namespace kuberelay::policy {
namespace {

constexpr std::string_view kGroupVersion = "smtp.kuberelay.io/v1alpha1";
constexpr size_t kMaxManifestBytes = 16 * 1024 * 1024;

std::string base64Decode(std::string_view in, bool& ok) {
  static const auto table = [] {
    std::array<int, 256> t{};
    t.fill(-1);
    const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(alphabet[i])] = i;
    return t;
  }();
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  int padding = 0;
  ok = true;
  for (char c : in) {
    if (c == '\n' || c == '\r' || c == ' ') continue;
    if (c == '=') {
      ++padding;
      continue;
    }
    int v = table[static_cast<unsigned char>(c)];
    if (v < 0 || padding > 0) {
      ok = false;
      return {};
    }
    buffer = (buffer << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xff));
    }
  }
  if (padding > 2) ok = false;
  return out;
}

// Per-object decoding context: knows the object and collects errors with field paths.
class ObjectDecoder {
public:
  ObjectDecoder(ResourceSet& out, ObjectRef ref, bool& invalid)
      : out_(out), ref_(std::move(ref)), invalid_(invalid) {}

  void error(const std::string& field, std::string message) {
    invalid_ = true;
    out_.diagnostics.push_back(
        {Diagnostic::Severity::Error, ref_, field, "InvalidField", std::move(message)});
  }

  bool expectMap(const yaml::Node& node, const std::string& path) {
    if (!node.IsMap()) {
      error(path, "must be an object");
      return false;
    }
    return true;
  }

  // Reports every key of `node` not in `known`.
  void checkKnown(const yaml::Node& node, const std::string& path,
                  std::initializer_list<std::string_view> known) {
    if (!node.IsMap()) return;
    for (const auto& kv : node.entries()) {
      const std::string& key = kv.first;
      if (std::find(known.begin(), known.end(), key) == known.end()) {
        error(join(path, key), "unknown field " + quote(key));
      }
    }
  }

  static std::string join(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
  }
  static std::string index(const std::string& path, size_t i) {
    return path + "[" + std::to_string(i) + "]";
  }

  std::optional<std::string> string(const yaml::Node& node, const std::string& path) {
    if (!node.IsScalar()) {
      error(path, "must be a string");
      return std::nullopt;
    }
    return node.Scalar();
  }

  std::optional<bool> boolean(const yaml::Node& node, const std::string& path) {
    if (node.IsScalar()) {
      const std::string& s = node.Scalar();
      if (s == "true" || s == "True" || s == "TRUE") return true;
      if (s == "false" || s == "False" || s == "FALSE") return false;
    }
    error(path, "must be true or false");
    return std::nullopt;
  }

  std::optional<int64_t> integer(const yaml::Node& node, const std::string& path, int64_t min,
                                 int64_t max) {
    int64_t v = 0;
    if (node.IsScalar()) {
      const std::string& s = node.Scalar();
      auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
      if (ec == std::errc() && ptr == s.data() + s.size() && !s.empty()) {
        if (v < min || v > max) {
          error(path, "must be between " + std::to_string(min) + " and " + std::to_string(max) +
                          ", got " + s);
          return std::nullopt;
        }
        return v;
      }
    }
    error(path, "must be an integer");
    return std::nullopt;
  }

  std::vector<std::pair<std::string, std::string>> stringList(const yaml::Node& node,
                                                              const std::string& path) {
    std::vector<std::pair<std::string, std::string>> out;
    if (!node.IsSequence()) {
      error(path, "must be a list");
      return out;
    }
    for (size_t i = 0; i < node.size(); ++i) {
      auto s = string(node[i], index(path, i));
      if (s) out.emplace_back(index(path, i), *s);
    }
    return out;
  }

  template <typename Enum>
  std::optional<Enum> enumeration(const yaml::Node& node, const std::string& path,
                                  std::initializer_list<std::pair<std::string_view, Enum>> values) {
    auto s = string(node, path);
    if (!s) return std::nullopt;
    for (const auto& [name, value] : values) {
      if (*s == name) return value;
    }
    std::string allowed;
    for (const auto& [name, value] : values) {
      allowed += (allowed.empty() ? "" : ", ") + std::string(name);
    }
    error(path, quote(*s) + " is not one of " + allowed);
    return std::nullopt;
  }

  std::vector<IpRange> ranges(const yaml::Node& node, const std::string& path) {
    std::vector<IpRange> out;
    for (const auto& [itemPath, text] : stringList(node, path)) {
      auto parsed = parseIpRange(text);
      if (!parsed.range) {
        error(itemPath, parsed.error);
        continue;
      }
      out.push_back(*parsed.range);
    }
    return out;
  }

private:
  ResourceSet& out_;
  ObjectRef ref_;
  bool& invalid_;
};

std::optional<Binding> parseBinding(std::string_view text, std::string& error) {
  Binding b;
  std::string_view host, port;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      error = quote(text) + " is not \"[IPv6]:port\"";
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    if (host == "::") {
      b.anyV6 = true;
    } else {
      auto a = IpAddress::parse(host);
      if (!a || host.find(':') == std::string_view::npos) {
        error = quote(host) + " is not an IPv6 address";
        return std::nullopt;
      }
      b.address = a;
    }
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon) {
      error = quote(text) + " is not \"address:port\" (write IPv6 as \"[addr]:port\")";
      return std::nullopt;
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host != "0.0.0.0") {
      auto a = IpAddress::parse(host);
      if (!a) {
        error = quote(host) + " is not an IPv4 address";
        return std::nullopt;
      }
      b.address = a;
    }
  }
  unsigned p = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (ec != std::errc() || ptr != port.data() + port.size() || port.empty() || p == 0 ||
      p > 65535) {
    error = quote(text) + ": port must be 1-65535";
    return std::nullopt;
  }
  b.port = static_cast<uint16_t>(p);
  return b;
}

bool validDnsName(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  size_t labelLen = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '.') {
      if (labelLen == 0 || s[i - 1] == '-') return false;
      labelLen = 0;
      continue;
    }
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              (c == '-' && labelLen > 0);
    if (!ok || ++labelLen > 63) return false;
  }
  return labelLen > 0 && s.back() != '-';
}

bool validDnsLabel(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return s.front() != '-' && s.back() != '-';
}

// "user@dom", "*@dom", "*@*.dom"
bool validSendAsPattern(std::string_view s) {
  size_t at = s.find('@');
  if (at == std::string_view::npos || at == 0 || s.find('@', at + 1) != std::string_view::npos) {
    return false;
  }
  std::string_view local = s.substr(0, at), domain = s.substr(at + 1);
  if (local != "*" && local.find_first_of(" \t*<>") != std::string_view::npos) return false;
  if (domain.substr(0, 2) == "*.") domain.remove_prefix(2);
  return validDnsName(domain);
}

void decodeConnectorSpec(ObjectDecoder& d, const yaml::Node& spec, ReceiveConnector& rc) {
  const std::string p = "spec";
  if (!d.expectMap(spec, p)) return;
  d.checkKnown(
      spec, p,
      {"enabled", "relayPool", "bindings", "remoteIPRanges", "ipRestrictionMode", "authMechanisms",
       "permissionGroups", "requireTLS", "fqdn", "banner", "tls", "users", "limits",
       "proxyProtocol", "forwarding", "protocolLogging", "enforcement"});
  if (const auto& n = spec["enabled"]) {
    if (const auto& v = d.boolean(n, p + ".enabled")) rc.enabled = *v;
  }
  if (const auto& n = spec["relayPool"]) {
    if (const auto& v = d.string(n, p + ".relayPool")) {
      if (!validDnsLabel(*v)) {
        d.error(p + ".relayPool", quote(*v) + " is not a DNS label");
      } else {
        rc.relayPool = *v;
      }
    }
  }
  if (const auto& n = spec["bindings"]) {
    auto items = d.stringList(n, p + ".bindings");
    for (const auto& [path, text] : items) {
      std::string err;
      auto b = parseBinding(text, err);
      if (!b) {
        d.error(path, err);
        continue;
      }
      if (std::find(rc.bindings.begin(), rc.bindings.end(), *b) != rc.bindings.end()) {
        d.error(path, quote(text) + " is listed twice");
        continue;
      }
      rc.bindings.push_back(*b);
    }
    if (n.IsSequence() && n.size() == 0) d.error(p + ".bindings", "must list at least one binding");
  } else {
    d.error(p + ".bindings", "is required");
  }
  if (const auto& n = spec["remoteIPRanges"]) {
    rc.remoteIPRanges = d.ranges(n, p + ".remoteIPRanges");
    if (n.IsSequence() && n.size() == 0) {
      d.error(p + ".remoteIPRanges", "must not be empty (omit it to allow every address)");
    }
  } else {
    rc.remoteIPRanges = {IpRange::all(IpFamily::V4), IpRange::all(IpFamily::V6)};
  }
  if (const auto& n = spec["ipRestrictionMode"]) {
    if (const auto& v = d.enumeration<IpRestrictionMode>(
            n, p + ".ipRestrictionMode",
            {{"AllClients", IpRestrictionMode::AllClients},
             {"AnonymousOnly", IpRestrictionMode::AnonymousOnly}})) {
      rc.ipRestrictionMode = *v;
    }
  }
  if (const auto& n = spec["authMechanisms"]) {
    if (!n.IsSequence()) {
      d.error(p + ".authMechanisms", "must be a list");
    } else {
      for (size_t i = 0; i < n.size(); ++i) {
        if (const auto& v = d.enumeration<uint8_t>(
                n[i], ObjectDecoder::index(p + ".authMechanisms", i),
                {{"Tls", auth_mechanism::kTls},
                 {"BasicAuth", auth_mechanism::kBasicAuth},
                 {"BasicAuthRequireTLS", auth_mechanism::kBasicAuthRequireTls},
                 {"ExternalAuthoritative", auth_mechanism::kExternalAuthoritative}})) {
          rc.authMechanisms |= *v;
        }
      }
    }
  }
  if (const auto& n = spec["permissionGroups"]) {
    if (!n.IsSequence()) {
      d.error(p + ".permissionGroups", "must be a list");
    } else {
      for (size_t i = 0; i < n.size(); ++i) {
        if (const auto& v = d.enumeration<uint8_t>(
                n[i], ObjectDecoder::index(p + ".permissionGroups", i),
                {{"AnonymousUsers", permission_group::kAnonymousUsers},
                 {"ExchangeUsers", permission_group::kExchangeUsers},
                 {"ExchangeServers", permission_group::kExchangeServers},
                 {"ExchangeLegacyServers", permission_group::kExchangeLegacyServers},
                 {"Partners", permission_group::kPartners},
                 {"Custom", permission_group::kCustom}})) {
          rc.permissionGroups |= *v;
        }
      }
    }
  }
  if (const auto& n = spec["requireTLS"]) {
    if (const auto& v = d.boolean(n, p + ".requireTLS")) rc.requireTLS = *v;
  }
  if (const auto& n = spec["fqdn"]) {
    if (const auto& v = d.string(n, p + ".fqdn")) {
      if (!validDnsName(*v)) {
        d.error(p + ".fqdn", quote(*v) + " is not a host name");
      } else {
        rc.fqdn = *v;
      }
    }
  }
  if (const auto& n = spec["banner"]) {
    if (const auto& v = d.string(n, p + ".banner")) {
      std::string text = *v;
      if (text.rfind("220 ", 0) == 0) text = text.substr(4);
      if (text.size() > 512 || text.find_first_of("\r\n") != std::string::npos) {
        d.error(p + ".banner", "must be one line of at most 512 characters");
      } else {
        rc.banner = text;
      }
    }
  }
  if (const auto& n = spec["tls"]) {
    const std::string tp = p + ".tls";
    if (d.expectMap(n, tp)) {
      d.checkKnown(n, tp, {"secretName", "implicit"});
      if (const auto& s = n["secretName"]) {
        if (const auto& v = d.string(s, tp + ".secretName")) rc.tlsSecretName = *v;
      } else {
        d.error(tp + ".secretName", "is required");
      }
      if (const auto& s = n["implicit"]) {
        if (const auto& v = d.boolean(s, tp + ".implicit")) rc.tlsImplicit = *v;
      }
    }
  }
  if (const auto& n = spec["users"]) {
    const std::string up = p + ".users";
    if (d.expectMap(n, up)) {
      d.checkKnown(n, up, {"secretName"});
      if (const auto& s = n["secretName"]) {
        if (const auto& v = d.string(s, up + ".secretName")) rc.usersSecretName = *v;
      } else {
        d.error(up + ".secretName", "is required");
      }
    }
  }
  if (const auto& n = spec["limits"]) {
    const std::string lp = p + ".limits";
    if (d.expectMap(n, lp)) {
      d.checkKnown(n, lp,
                   {"maxMessageSize", "maxHeaderSize", "maxRecipientsPerMessage", "maxHopCount",
                    "maxInboundConnection", "maxInboundConnectionPerSource", "connectionTimeout",
                    "connectionInactivityTimeout", "maxProtocolErrors", "maxLogonFailures",
                    "tarpitInterval", "authTarpitInterval", "messageRateLimit"});
      Limits& l = rc.limits;
      auto quantity = [&](const char* key, uint64_t& target, uint64_t min, uint64_t max) {
        const auto& q = n[key];
        if (!q) return;
        std::string path = lp + "." + key;
        if (!q.IsScalar()) {
          d.error(path, "must be a quantity such as 36Mi");
          return;
        }
        std::string err;
        auto v = parseQuantity(q.Scalar(), err);
        if (!v) {
          d.error(path, err);
        } else if (*v < min || *v > max) {
          d.error(path, quote(q.Scalar()) + " is out of range (" + std::to_string(min) + " to " +
                            std::to_string(max) + " bytes)");
        } else {
          target = *v;
        }
      };
      auto count = [&](const char* key, uint32_t& target, int64_t min, int64_t max) {
        if (const auto& q = n[key]) {
          if (const auto& v = d.integer(q, lp + "." + key, min, max))
            target = static_cast<uint32_t>(*v);
        }
      };
      auto duration = [&](const char* key, Millis& target, Millis min, Millis max) {
        const auto& q = n[key];
        if (!q) return;
        std::string path = lp + "." + key;
        if (!q.IsScalar()) {
          d.error(path, "must be a duration such as 5m");
          return;
        }
        std::string err;
        std::optional<Millis> v = parseDuration(q.Scalar(), err);
        if (!v.has_value()) {
          d.error(path, err);
        } else if (v.value() < min || v.value() > max) {
          d.error(path, quote(q.Scalar()) + " is out of range (" + formatDuration(min) + " to " +
                            formatDuration(max) + ")");
        } else {
          target = *v;
        }
      };
      constexpr uint64_t kTwoGiB = 2ull * 1024 * 1024 * 1024;
      quantity("maxMessageSize", l.maxMessageSize, 65536, kTwoGiB);
      quantity("maxHeaderSize", l.maxHeaderSize, 1, kTwoGiB);
      count("maxRecipientsPerMessage", l.maxRecipientsPerMessage, 1, 512000);
      count("maxHopCount", l.maxHopCount, 1, 500);
      count("maxInboundConnection", l.maxInboundConnection, 1, 2147483647);
      count("maxInboundConnectionPerSource", l.maxInboundConnectionPerSource, 1, 10000);
      const Millis day{24ll * 3600 * 1000};
      duration("connectionTimeout", l.connectionTimeout, Millis{1000}, day);
      duration("connectionInactivityTimeout", l.connectionInactivityTimeout, Millis{1000}, day);
      count("maxProtocolErrors", l.maxProtocolErrors, 0, 2147483647);
      count("maxLogonFailures", l.maxLogonFailures, 0, 10);
      duration("tarpitInterval", l.tarpitInterval, Millis{0}, Millis{10 * 60 * 1000});
      duration("authTarpitInterval", l.authTarpitInterval, Millis{0}, Millis{10 * 60 * 1000});
      count("messageRateLimit", l.messageRateLimit, 0, 2147483647);
    }
  }
  if (const auto& n = spec["proxyProtocol"]) {
    const std::string pp = p + ".proxyProtocol";
    if (d.expectMap(n, pp)) {
      d.checkKnown(n, pp, {"trustedRanges"});
      rc.proxyProtocol = true;
      if (const auto& r = n["trustedRanges"]) {
        rc.proxyTrustedRanges = d.ranges(r, pp + ".trustedRanges");
        if (r.IsSequence() && r.size() == 0) d.error(pp + ".trustedRanges", "must not be empty");
      } else {
        d.error(pp + ".trustedRanges", "is required");
      }
    }
  }
  if (const auto& n = spec["forwarding"]) {
    const std::string fp = p + ".forwarding";
    if (d.expectMap(n, fp)) {
      d.checkKnown(n, fp,
                   {"smarthosts", "tls", "credentialsSecretName", "caSecretName", "dropDirectory"});
      Forwarding& f = rc.forwarding;
      if (const auto& s = n["smarthosts"]) {
        for (const auto& [path, text] : d.stringList(s, fp + ".smarthosts")) {
          size_t colon = text.rfind(':');
          std::string host = colon == std::string::npos ? "" : text.substr(0, colon);
          if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
            host = host.substr(1, host.size() - 2);
          }
          unsigned port = 0;
          std::string_view portText = colon == std::string::npos
                                          ? std::string_view{}
                                          : std::string_view(text).substr(colon + 1);
          auto [ptr, ec] =
              std::from_chars(portText.data(), portText.data() + portText.size(), port);
          bool hostOk = validDnsName(host) || IpAddress::parse(host).has_value();
          if (!hostOk || ec != std::errc() || ptr != portText.data() + portText.size() ||
              port == 0 || port > 65535) {
            d.error(path, quote(text) + " is not \"host:port\"");
            continue;
          }
          f.smarthosts.push_back(text);
        }
      }
      if (const auto& s = n["tls"]) {
        if (const auto& v = d.enumeration<ForwardTls>(s, fp + ".tls",
                                                      {{"None", ForwardTls::None},
                                                       {"Opportunistic", ForwardTls::Opportunistic},
                                                       {"Required", ForwardTls::Required}})) {
          f.tls = *v;
        }
      }
      if (const auto& s = n["credentialsSecretName"]) {
        if (const auto& v = d.string(s, fp + ".credentialsSecretName"))
          f.credentialsSecretName = *v;
      }
      if (const auto& s = n["caSecretName"]) {
        if (const auto& v = d.string(s, fp + ".caSecretName")) f.caSecretName = *v;
      }
      if (const auto& s = n["dropDirectory"]) {
        if (const auto& v = d.string(s, fp + ".dropDirectory")) {
          if (v->empty() || (*v)[0] != '/') {
            d.error(fp + ".dropDirectory", quote(*v) + " is not an absolute path");
          } else {
            f.dropDirectory = *v;
          }
        }
      }
    }
  } else {
    d.error(p + ".forwarding", "is required (smarthosts or dropDirectory)");
  }
  if (const auto& n = spec["protocolLogging"]) {
    if (const auto& v = d.enumeration<ProtocolLogging>(
            n, p + ".protocolLogging",
            {{"None", ProtocolLogging::None}, {"Verbose", ProtocolLogging::Verbose}})) {
      rc.protocolLogging = *v;
    }
  }
  if (const auto& n = spec["enforcement"]) {
    if (const auto& v = d.enumeration<Enforcement>(
            n, p + ".enforcement",
            {{"Enforce", Enforcement::Enforce}, {"Audit", Enforcement::Audit}})) {
      rc.enforcement = *v;
    }
  }
}

void decodePermissionSpec(ObjectDecoder& d, const yaml::Node& spec, SenderPermission& sp) {
  const std::string p = "spec";
  if (!d.expectMap(spec, p)) return;
  d.checkKnown(spec, p, {"connector", "principal", "name", "extendedRights", "deny", "sendAs"});
  if (const auto& n = spec["connector"]) {
    if (const auto& v = d.string(n, p + ".connector")) sp.connector = *v;
  } else {
    d.error(p + ".connector", "is required");
  }
  if (const auto& n = spec["principal"]) {
    if (auto v =
            d.enumeration<PrincipalKind>(n, p + ".principal",
                                         {{"Anonymous", PrincipalKind::Anonymous},
                                          {"AuthenticatedUsers", PrincipalKind::AuthenticatedUsers},
                                          {"User", PrincipalKind::User},
                                          {"Group", PrincipalKind::Group},
                                          {"ExternallySecured", PrincipalKind::ExternallySecured},
                                          {"Partners", PrincipalKind::Partners}})) {
      sp.principal = *v;
    }
  } else {
    d.error(p + ".principal", "is required");
  }
  if (const auto& n = spec["name"]) {
    if (const auto& v = d.string(n, p + ".name")) sp.name = *v;
  }
  if (const auto& n = spec["extendedRights"]) {
    auto items = d.stringList(n, p + ".extendedRights");
    for (const auto& [path, text] : items) {
      if (const auto& r = parseRight(text)) {
        sp.rights |= *r;
      } else {
        d.error(path, quote(text) + " is not an Exchange receive-connector extended right");
      }
    }
    if (n.IsSequence() && n.size() == 0)
      d.error(p + ".extendedRights", "must name at least one right");
  } else {
    d.error(p + ".extendedRights", "is required");
  }
  if (const auto& n = spec["deny"]) {
    if (const auto& v = d.boolean(n, p + ".deny")) sp.deny = *v;
  }
  if (const auto& n = spec["sendAs"]) {
    for (const auto& [path, text] : d.stringList(n, p + ".sendAs")) {
      if (!validSendAsPattern(text)) {
        d.error(path,
                quote(text) + " is not an address pattern (user@domain, *@domain, *@*.domain)");
        continue;
      }
      sp.sendAs.push_back(lowerCopy(text));
    }
  }
  bool needsName = sp.principal == PrincipalKind::User || sp.principal == PrincipalKind::Group;
  if (needsName && sp.name.empty()) {
    d.error(p + ".name", std::string("is required for principal ") + toString(sp.principal));
  }
  if (!needsName && !sp.name.empty() && spec["principal"]) {
    d.error(p + ".name", std::string("must not be set for principal ") + toString(sp.principal));
  }
}

void decodeDomainSpec(ObjectDecoder& d, const yaml::Node& spec, AcceptedDomain& ad) {
  const std::string p = "spec";
  if (!d.expectMap(spec, p)) return;
  d.checkKnown(spec, p, {"domainName", "domainType"});
  if (const auto& n = spec["domainName"]) {
    if (const auto& v = d.string(n, p + ".domainName")) {
      std::string name = lowerCopy(*v);
      if (!name.empty() && name.back() == '.') name.pop_back();
      bool wildcard = name.rfind("*.", 0) == 0;
      std::string bare = wildcard ? name.substr(2) : name;
      if (!validDnsName(bare)) {
        d.error(p + ".domainName",
                quote(*v) + " is not a domain name (example.com or *.example.com)");
      } else {
        ad.domain = bare;
        ad.wildcard = wildcard;
      }
    }
  } else {
    d.error(p + ".domainName", "is required");
  }
  if (const auto& n = spec["domainType"]) {
    if (const auto& v = d.enumeration<DomainType>(n, p + ".domainType",
                                                  {{"Authoritative", DomainType::Authoritative},
                                                   {"InternalRelay", DomainType::InternalRelay},
                                                   {"ExternalRelay", DomainType::ExternalRelay}})) {
      ad.type = *v;
    }
  }
}

void decodeSecret(ObjectDecoder& d, const yaml::Node& doc, Secret& s) {
  if (const auto& n = doc["type"]) {
    if (const auto& v = d.string(n, "type")) s.type = *v;
  } else {
    s.type = "Opaque";
  }
  if (const auto& n = doc["data"]) {
    if (d.expectMap(n, "data")) {
      for (const auto& kv : n.entries()) {
        const std::string& key = kv.first;
        auto v = d.string(kv.second, "data." + key);
        if (!v) continue;
        bool ok = true;
        std::string decoded = base64Decode(*v, ok);
        if (!ok) {
          d.error("data." + key, "is not valid base64");
          continue;
        }
        s.data[key] = std::move(decoded);
      }
    }
  }
  if (const auto& n = doc["stringData"]) {
    if (d.expectMap(n, "stringData")) {
      for (const auto& kv : n.entries()) {
        const std::string& key = kv.first;
        if (const auto& v = d.string(kv.second, "stringData." + key)) s.data[key] = *v;
      }
    }
  }
}

void decodeObject(const yaml::Node& doc, std::string_view source, ResourceSet& out,
                  const ManifestOptions& options) {
  if (!doc.IsMap()) {
    out.diagnostics.push_back({Diagnostic::Severity::Error,
                               {"", "", "", std::string(source)},
                               "",
                               "InvalidManifest",
                               "a manifest document must be an object"});
    return;
  }
  std::string kind = doc["kind"] && doc["kind"].IsScalar() ? doc["kind"].Scalar() : "";
  if (kind == "List") {
    if (doc["items"] && doc["items"].IsSequence()) {
      for (size_t i = 0; i < doc["items"].size(); ++i) {
        decodeObject(doc["items"][i], std::string(source) + ".items[" + std::to_string(i) + "]",
                     out, options);
      }
    }
    return;
  }
  std::string apiVersion =
      doc["apiVersion"] && doc["apiVersion"].IsScalar() ? doc["apiVersion"].Scalar() : "";
  bool ours = kind == "ReceiveConnector" || kind == "SenderPermission" || kind == "AcceptedDomain";
  if (!ours && kind != "Secret") return;  // Namespaces, ConfigMaps, ...: not ours to read

  ObjectMeta meta;
  meta.source = std::string(source);
  meta.ns = options.defaultNamespace;
  const yaml::Node& md = doc["metadata"];
  if (md && md.IsMap()) {
    if (md["name"] && md["name"].IsScalar()) meta.name = md["name"].Scalar();
    if (md["namespace"] && md["namespace"].IsScalar()) meta.ns = md["namespace"].Scalar();
    if (md["generation"] && md["generation"].IsScalar()) {
      const std::string& g = md["generation"].Scalar();
      std::from_chars(g.data(), g.data() + g.size(), meta.generation);
    }
    if (md["uid"] && md["uid"].IsScalar()) meta.uid = md["uid"].Scalar();
    if (md["resourceVersion"] && md["resourceVersion"].IsScalar()) {
      meta.resourceVersion = md["resourceVersion"].Scalar();
    }
  }
  bool invalid = false;
  ObjectDecoder d(out, ObjectRef{kind, meta.ns, meta.name, meta.source}, invalid);
  if (meta.name.empty()) d.error("metadata.name", "is required");
  if (ours && apiVersion != kGroupVersion) {
    d.error("apiVersion", quote(apiVersion) + " is not " + std::string(kGroupVersion));
  }
  if (ours) {
    d.checkKnown(doc, "", {"apiVersion", "kind", "metadata", "spec", "status"});
  }
  const yaml::Node& spec = doc["spec"];
  if (ours && !spec) d.error("spec", "is required");

  if (kind == "ReceiveConnector") {
    ReceiveConnector rc;
    if (spec) decodeConnectorSpec(d, spec, rc);
    rc.meta = meta;
    rc.meta.invalid = invalid;
    out.connectors.push_back(std::move(rc));
  } else if (kind == "SenderPermission") {
    SenderPermission sp;
    if (spec) decodePermissionSpec(d, spec, sp);
    sp.meta = meta;
    sp.meta.invalid = invalid;
    out.permissions.push_back(std::move(sp));
  } else if (kind == "AcceptedDomain") {
    AcceptedDomain ad;
    if (spec) decodeDomainSpec(d, spec, ad);
    ad.meta = meta;
    ad.meta.invalid = invalid;
    out.domains.push_back(std::move(ad));
  } else {
    Secret s;
    decodeSecret(d, doc, s);
    s.meta = meta;
    s.meta.invalid = invalid;
    out.secrets.push_back(std::move(s));
  }
}

}  // namespace

void decodeManifests(std::string_view text, std::string_view source, ResourceSet& out,
                     const ManifestOptions& options) {
  // YAML allows no C0 control characters but tab, LF and CR.
  for (size_t i = 0; i < text.size(); ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f) {
      size_t line = 1 + static_cast<size_t>(std::count(text.begin(), text.begin() + i, '\n'));
      out.diagnostics.push_back({Diagnostic::Severity::Error,
                                 {"", "", "", std::string(source)},
                                 "",
                                 "InvalidManifest",
                                 "line " + std::to_string(line) + ": control character " +
                                     std::to_string(c) + " is not allowed in YAML"});
      return;
    }
  }
  if (text.size() > kMaxManifestBytes) {
    out.diagnostics.push_back({Diagnostic::Severity::Error,
                               {"", "", "", std::string(source)},
                               "",
                               "InvalidManifest",
                               "larger than " + std::to_string(kMaxManifestBytes) + " bytes"});
    return;
  }
  yaml::ParseResult parsed = yaml::parseAll(text);
  if (!parsed.error.empty()) {
    out.diagnostics.push_back({Diagnostic::Severity::Error,
                               {"", "", "", std::string(source)},
                               "",
                               "InvalidManifest",
                               parsed.error});
    return;
  }
  const auto& docs = parsed.documents;
  for (size_t i = 0; i < docs.size(); ++i) {
    if (docs[i].IsNull()) continue;
    std::string where = std::string(source) + (docs.size() > 1 ? "#" + std::to_string(i + 1) : "");
    decodeObject(docs[i], where, out, options);
  }
}

bool hasUnreadableManifests(const ResourceSet& set) {
  return std::any_of(set.diagnostics.begin(), set.diagnostics.end(),
                     [](const Diagnostic& d) { return d.reason == "InvalidManifest"; });
}

ResourceSet loadManifestDirectory(const std::filesystem::path& dir,
                                  const ManifestOptions& options) {
  ResourceSet out;
  std::vector<std::filesystem::path> files;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (!entry.is_regular_file()) continue;
    auto ext = entry.path().extension().string();
    if (ext == ".yaml" || ext == ".yml" || ext == ".json") files.push_back(entry.path());
  }
  if (ec) {
    out.diagnostics.push_back({Diagnostic::Severity::Error,
                               {"", "", "", dir.string()},
                               "",
                               "InvalidManifest",
                               "cannot read directory: " + ec.message()});
    return out;
  }
  std::sort(files.begin(), files.end());
  for (const auto& file : files) {
    std::ifstream in(file, std::ios::binary);
    std::stringstream buffer;
    buffer << in.rdbuf();
    decodeManifests(buffer.str(), file.filename().string(), out, options);
  }
  return out;
}

}  // namespace kuberelay::policy
