#include "kuberelay/policy/model.h"

#include "kuberelay/policy/reply.h"

namespace kuberelay::policy {

std::string Binding::toString() const {
  std::string host;
  if (!address) {
    host = anyV6 ? "[::]" : "0.0.0.0";
  } else if (address->isV4()) {
    host = address->toString();
  } else {
    host = "[" + address->toString() + "]";
  }
  return host + ":" + std::to_string(port);
}

std::string Diagnostic::toString() const {
  std::string out;
  if (!object.kind.empty()) out += object.kind + " ";
  if (!object.name.empty()) {
    out += object.ns + "/" + object.name;
  } else if (!object.source.empty()) {
    out += object.source;
  }
  out += ": ";
  if (!field.empty()) out += field + ": ";
  out += message;
  return out;
}

std::string Reply::toString() const {
  std::string out = std::to_string(code);
  if (!enhanced.empty()) {
    out += ' ';
    out += enhanced;
  }
  if (!text.empty()) {
    out += ' ';
    out += text;
  }
  return out;
}

const char* toString(PrincipalKind kind) {
  switch (kind) {
    case PrincipalKind::Anonymous:
      return "Anonymous";
    case PrincipalKind::AuthenticatedUsers:
      return "AuthenticatedUsers";
    case PrincipalKind::User:
      return "User";
    case PrincipalKind::Group:
      return "Group";
    case PrincipalKind::ExternallySecured:
      return "ExternallySecured";
    case PrincipalKind::Partners:
      return "Partners";
  }
  return "?";
}

const char* toString(DomainType type) {
  switch (type) {
    case DomainType::Authoritative:
      return "Authoritative";
    case DomainType::InternalRelay:
      return "InternalRelay";
    case DomainType::ExternalRelay:
      return "ExternalRelay";
  }
  return "?";
}

const char* toString(IpRestrictionMode mode) {
  return mode == IpRestrictionMode::AllClients ? "AllClients" : "AnonymousOnly";
}

namespace {

struct FlagName {
  uint8_t bit;
  const char* name;
};

// "Tls, BasicAuth" for the bits set, "None" for none.
template <size_t N>
std::string flagsToString(uint8_t bits, const FlagName (&names)[N]) {
  std::string out;
  for (const auto& f : names) {
    if ((bits & f.bit) == 0) continue;
    if (!out.empty()) out += ", ";
    out += f.name;
  }
  return out.empty() ? "None" : out;
}

constexpr FlagName kMechanismNames[] = {
    {auth_mechanism::kTls, "Tls"},
    {auth_mechanism::kBasicAuth, "BasicAuth"},
    {auth_mechanism::kBasicAuthRequireTls, "BasicAuthRequireTLS"},
    {auth_mechanism::kExternalAuthoritative, "ExternalAuthoritative"}};

constexpr FlagName kGroupNames[] = {
    {permission_group::kAnonymousUsers, "AnonymousUsers"},
    {permission_group::kExchangeUsers, "ExchangeUsers"},
    {permission_group::kExchangeServers, "ExchangeServers"},
    {permission_group::kExchangeLegacyServers, "ExchangeLegacyServers"},
    {permission_group::kPartners, "Partners"},
    {permission_group::kCustom, "Custom"}};

}  // namespace

std::string authMechanismsToString(uint8_t m) { return flagsToString(m, kMechanismNames); }

std::string permissionGroupsToString(uint8_t g) { return flagsToString(g, kGroupNames); }

}  // namespace kuberelay::policy
