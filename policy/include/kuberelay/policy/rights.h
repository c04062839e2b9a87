// NAME
//   rights.h - Exchange receive-connector extended rights as a bit set
// DESCRIPTION
//   The names are Exchange's (exchange-semantics.md §1.5); the short forms are KubeRelay's.
//   parseRight() accepts both, case-insensitively.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kuberelay::policy {

using Rights = uint32_t;

namespace right {
inline constexpr Rights kSubmit = 1u << 0;              // ms-Exch-SMTP-Submit
inline constexpr Rights kAcceptAnyRecipient = 1u << 1;  // ms-Exch-SMTP-Accept-Any-Recipient
inline constexpr Rights kAcceptAnySender = 1u << 2;     // ms-Exch-SMTP-Accept-Any-Sender
inline constexpr Rights kAcceptAuthoritativeDomainSender = 1u << 3;
inline constexpr Rights kAcceptRoutingHeaders = 1u << 4;  // ms-Exch-Accept-Headers-Routing
inline constexpr Rights kAcceptOrganizationHeaders = 1u << 5;
inline constexpr Rights kAcceptForestHeaders = 1u << 6;
inline constexpr Rights kBypassAntiSpam = 1u << 7;
inline constexpr Rights kBypassMessageSizeLimit = 1u << 8;
inline constexpr Rights kAcceptAuthenticationFlag = 1u << 9;
inline constexpr Rights kAcceptExch50 = 1u << 10;
inline constexpr int kCount = 11;
}  // namespace right

std::optional<Rights> parseRight(std::string_view name);
// Short names ("Submit, AcceptAnyRecipient"), in bit order.
std::string rightsToString(Rights rights);
// The Exchange name of a single right ("ms-Exch-SMTP-Submit").
const char* exchangeRightName(Rights single);
const char* shortRightName(Rights single);

// Rights granted by each permission group to its security principals (RC table,
// exchange-semantics.md §1.4). "Externally secured" is the ExternalAuthoritative variant of
// ExchangeServers: the same list minus the forest/organization headers and internal rights.
namespace group_rights {
inline constexpr Rights kAnonymousUsers = right::kAcceptRoutingHeaders | right::kAcceptAnySender |
                                          right::kAcceptAuthoritativeDomainSender | right::kSubmit;
inline constexpr Rights kExchangeUsers = right::kAcceptRoutingHeaders | right::kBypassAntiSpam |
                                         right::kAcceptAnyRecipient | right::kSubmit;
inline constexpr Rights kExchangeServers =
    right::kAcceptForestHeaders | right::kAcceptOrganizationHeaders | right::kAcceptRoutingHeaders |
    right::kBypassAntiSpam | right::kBypassMessageSizeLimit | right::kAcceptAnyRecipient |
    right::kAcceptAnySender | right::kAcceptAuthenticationFlag |
    right::kAcceptAuthoritativeDomainSender | right::kAcceptExch50 | right::kSubmit;
inline constexpr Rights kExternallySecured =
    right::kAcceptRoutingHeaders | right::kBypassAntiSpam | right::kBypassMessageSizeLimit |
    right::kAcceptAnyRecipient | right::kAcceptAnySender | right::kAcceptAuthenticationFlag |
    right::kAcceptAuthoritativeDomainSender | right::kAcceptExch50 | right::kSubmit;
inline constexpr Rights kExchangeLegacyServers =
    right::kAcceptRoutingHeaders | right::kBypassAntiSpam | right::kBypassMessageSizeLimit |
    right::kAcceptAnyRecipient | right::kAcceptAnySender | right::kAcceptAuthenticationFlag |
    right::kAcceptAuthoritativeDomainSender | right::kAcceptExch50 | right::kSubmit;
inline constexpr Rights kPartners = right::kAcceptRoutingHeaders | right::kSubmit;
}  // namespace group_rights

// Users secret groups that stand for Exchange's server security groups.
inline constexpr std::string_view kExchangeServersGroup = "ExchangeServers";
inline constexpr std::string_view kExchangeLegacyGroup = "ExchangeLegacyInterop";

}  // namespace kuberelay::policy
