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

std::string authMechanismsToString(uint8_t m) {
  std::string out;
  auto add = [&](uint8_t bit, const char* name) {
    if ((m & bit) == 0) return;
    if (!out.empty()) out += ", ";
    out += name;
  };
  add(auth_mechanism::kTls, "Tls");
  add(auth_mechanism::kBasicAuth, "BasicAuth");
  add(auth_mechanism::kBasicAuthRequireTls, "BasicAuthRequireTLS");
  add(auth_mechanism::kExternalAuthoritative, "ExternalAuthoritative");
  return out.empty() ? "None" : out;
}

std::string permissionGroupsToString(uint8_t g) {
  std::string out;
  auto add = [&](uint8_t bit, const char* name) {
    if ((g & bit) == 0) return;
    if (!out.empty()) out += ", ";
    out += name;
  };
  add(permission_group::kAnonymousUsers, "AnonymousUsers");
  add(permission_group::kExchangeUsers, "ExchangeUsers");
  add(permission_group::kExchangeServers, "ExchangeServers");
  add(permission_group::kExchangeLegacyServers, "ExchangeLegacyServers");
  add(permission_group::kPartners, "Partners");
  add(permission_group::kCustom, "Custom");
  return out.empty() ? "None" : out;
}

}  // namespace kuberelay::policy
