// NAME
//   reply.h - SMTP replies as data: basic code, enhanced status code, text
// DESCRIPTION
//   Every reply the policy can produce is a named constant here, worded as Exchange words it
//   (exchange-semantics.md §1.8) or, where Exchange is silent, as the RFC does. Replies hold
//   views into static storage or into the snapshot, so deciding never allocates.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace kuberelay::policy {

struct Reply {
  uint16_t code = 0;
  std::string_view enhanced;  // "5.7.1"; empty when the reply has none (220 banner)
  std::string_view text;

  bool positive() const { return code < 400; }
  bool transient() const { return code >= 400 && code < 500; }
  bool permanent() const { return code >= 500; }
  // "550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain"
  std::string toString() const;
};

namespace replies {
// connect
inline constexpr Reply kNoConnector{554, "5.7.1", "No receive connector accepts this client"};
inline constexpr Reply kConnectorMisconfigured{
    421, "4.3.5", "Service not available, closing transmission channel"};
inline constexpr Reply kNoPolicy{421, "4.3.2", "System not accepting network messages"};
// STARTTLS
inline constexpr Reply kStartTlsReady{220, "2.0.0", "SMTP server ready"};
inline constexpr Reply kTlsNotAvailable{454, "4.7.0", "TLS not available"};
inline constexpr Reply kTlsAlreadyActive{503, "5.5.1", "TLS already active"};
// AUTH
inline constexpr Reply kAuthSucceeded{235, "2.7.0", "Authentication successful"};
inline constexpr Reply kAuthFailed{535, "5.7.3", "Authentication unsuccessful"};
inline constexpr Reply kAuthMechanismUnknown{504, "5.7.4", "Unrecognized authentication type"};
inline constexpr Reply kAuthEncryptionRequired{
    538, "5.7.11", "Encryption required for requested authentication mechanism"};
inline constexpr Reply kAlreadyAuthenticated{503, "5.5.1", "Already authenticated"};
// MAIL FROM
inline constexpr Reply kSenderOk{250, "2.1.0", "Sender OK"};
inline constexpr Reply kNotAuthenticated{530, "5.7.1", "Client was not authenticated"};
inline constexpr Reply kAnonymousOffList{530, "5.7.3", "Client was not authenticated"};
inline constexpr Reply kMustStartTls{530, "5.7.0", "Must issue a STARTTLS command first"};
inline constexpr Reply kSubmitDenied{550, "5.7.1",
                                     "Client does not have permissions to submit to this server"};
inline constexpr Reply kSendAsDenied{550, "5.7.1",
                                     "Client does not have permission to send as this sender"};
inline constexpr Reply kAnonymousSendAsDenied{
    550, "5.7.1", "Anonymous client does not have permission to send as this sender"};
inline constexpr Reply kMessageTooBig{552, "5.3.4",
                                      "Message size exceeds fixed maximum message size"};
// RCPT TO
inline constexpr Reply kRecipientOk{250, "2.1.5", "Recipient OK"};
inline constexpr Reply kUnableToRelay{550, "5.7.54",
                                      "SMTP; Unable to relay recipient in non-accepted domain"};
inline constexpr Reply kTooManyRecipients{452, "4.5.3", "Too many recipients"};
// DATA
inline constexpr Reply kMessageSizeOk{250, "2.6.0", "Message size OK"};
}  // namespace replies

}  // namespace kuberelay::policy
