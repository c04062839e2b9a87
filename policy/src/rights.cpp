#include "kuberelay/policy/rights.h"

#include <array>

#include "ascii.h"

namespace kuberelay::policy {
namespace {

struct RightName {
  Rights bit;
  const char* exchange;
  const char* shortName;
};

constexpr std::array<RightName, right::kCount> kRightNames{{
    {right::kSubmit, "ms-Exch-SMTP-Submit", "Submit"},
    {right::kAcceptAnyRecipient, "ms-Exch-SMTP-Accept-Any-Recipient", "AcceptAnyRecipient"},
    {right::kAcceptAnySender, "ms-Exch-SMTP-Accept-Any-Sender", "AcceptAnySender"},
    {right::kAcceptAuthoritativeDomainSender, "ms-Exch-SMTP-Accept-Authoritative-Domain-Sender",
     "AcceptAuthoritativeDomainSender"},
    {right::kAcceptRoutingHeaders, "ms-Exch-Accept-Headers-Routing", "AcceptRoutingHeaders"},
    {right::kAcceptOrganizationHeaders, "ms-Exch-Accept-Headers-Organization",
     "AcceptOrganizationHeaders"},
    {right::kAcceptForestHeaders, "ms-Exch-Accept-Headers-Forest", "AcceptForestHeaders"},
    {right::kBypassAntiSpam, "ms-Exch-Bypass-Anti-Spam", "BypassAntiSpam"},
    {right::kBypassMessageSizeLimit, "ms-Exch-Bypass-Message-Size-Limit", "BypassMessageSizeLimit"},
    {right::kAcceptAuthenticationFlag, "ms-Exch-SMTP-Accept-Authentication-Flag",
     "AcceptAuthenticationFlag"},
    {right::kAcceptExch50, "ms-Exch-SMTP-Accept-Exch50", "AcceptExch50"},
}};

}  // namespace

std::optional<Rights> parseRight(std::string_view name) {
  for (const auto& r : kRightNames) {
    if (iequals(name, r.exchange) || iequals(name, r.shortName)) return r.bit;
  }
  // Microsoft's own "allow anonymous relay" page spells it this way (seed 003).
  if (iequals(name, "Ms-Exchange-SMTP-Accept-Any-Recipient")) return right::kAcceptAnyRecipient;
  return std::nullopt;
}

std::string rightsToString(Rights rights) {
  std::string out;
  for (const auto& r : kRightNames) {
    if ((rights & r.bit) == 0) continue;
    if (!out.empty()) out += ", ";
    out += r.shortName;
  }
  return out.empty() ? "none" : out;
}

const char* exchangeRightName(Rights single) {
  for (const auto& r : kRightNames) {
    if (r.bit == single) return r.exchange;
  }
  return "?";
}

const char* shortRightName(Rights single) {
  for (const auto& r : kRightNames) {
    if (r.bit == single) return r.shortName;
  }
  return "?";
}

}  // namespace kuberelay::policy
