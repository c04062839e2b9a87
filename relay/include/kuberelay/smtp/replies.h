// NAME
//   replies.h - the SMTP protocol layer's own replies, as data
// DESCRIPTION
//   Policy decisions carry their replies (kuberelay/policy/reply.h); these are the replies the
//   protocol layer gives by itself: syntax and sequence errors, limits, SASL prompts, the body
//   checks at the end of DATA. Worded as Exchange words them where it does (exchange-semantics.md
//   §1.8), else as Postfix or the RFC does. Never write a reply code as a literal elsewhere.
#pragma once

#include "kuberelay/policy/reply.h"

namespace kuberelay::smtp {

using policy::Reply;

namespace replies {
// Command lines
inline constexpr Reply kUnrecognizedCommand{500, "5.3.3", "Unrecognized command"};
inline constexpr Reply kLineTooLong{500, "5.5.2", "Line too long"};
inline constexpr Reply kBareLineEndingInCommand{500, "5.5.2",
                                                "Syntax error: bare CR, LF or NUL in command"};
inline constexpr Reply kNoArgumentsAllowed{501, "5.5.4", "Syntax error: no arguments allowed"};
inline constexpr Reply kEhloSyntax{501, "5.5.4", "Syntax: EHLO hostname"};
inline constexpr Reply kHeloSyntax{501, "5.5.4", "Syntax: HELO hostname"};
inline constexpr Reply kMailSyntax{501, "5.5.4", "Syntax: MAIL FROM:<address>"};
inline constexpr Reply kRcptSyntax{501, "5.5.4", "Syntax: RCPT TO:<address>"};
inline constexpr Reply kVrfySyntax{501, "5.5.4", "Syntax: VRFY address"};
inline constexpr Reply kAuthSyntax{501, "5.5.4", "Syntax: AUTH mechanism [initial-response]"};
inline constexpr Reply kBdatSyntax{501, "5.5.4", "Syntax: BDAT size [LAST]"};
inline constexpr Reply kParameterSyntax{501, "5.5.4", "Syntax error in parameters"};
inline constexpr Reply kUnsupportedParameter{555, "5.5.4", "Unsupported option"};
inline constexpr Reply kBadSender{501, "5.1.7", "Bad sender address syntax"};
inline constexpr Reply kBadRecipient{501, "5.1.3", "Bad recipient address syntax"};
inline constexpr Reply kNonAsciiAddress{553, "5.6.7", "Non-ASCII address requires SMTPUTF8"};

// Sequence
inline constexpr Reply kSendHelloFirst{503, "5.5.2", "Send hello first"};
inline constexpr Reply kNeedMail{503, "5.5.1", "Need mail command"};
inline constexpr Reply kNeedRcpt{503, "5.5.1", "Need rcpt command"};
inline constexpr Reply kSenderAlreadySpecified{503, "5.5.1", "Sender already specified"};
inline constexpr Reply kBadSequence{503, "5.5.1", "Bad sequence of commands"};

// Simple commands
inline constexpr Reply kOk{250, "2.0.0", "OK"};
inline constexpr Reply kResetting{250, "2.0.0", "Resetting"};
inline constexpr Reply kClosing{221, "2.0.0", "Service closing transmission channel"};
inline constexpr Reply kCannotVrfy{
    252, "2.5.2", "Cannot VRFY user, but will accept message and attempt delivery"};
inline constexpr Reply kHelp{
    214, "2.0.0", "Commands: HELO EHLO STARTTLS AUTH MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT"};

// SASL (RFC 4954)
inline constexpr Reply kAuthContinue{334, "", ""};
inline constexpr Reply kAuthUsernamePrompt{334, "", "VXNlcm5hbWU6"};  // "Username:"
inline constexpr Reply kAuthPasswordPrompt{334, "", "UGFzc3dvcmQ6"};  // "Password:"
inline constexpr Reply kAuthCannotDecode{501, "5.5.2", "Cannot decode response"};
inline constexpr Reply kAuthCancelled{501, "5.7.0", "Authentication cancelled"};

// DATA and BDAT
inline constexpr Reply kStartMailInput{354, "", "Start mail input; end with <CRLF>.<CRLF>"};
inline constexpr Reply kQueued{250, "2.6.0", "Queued mail for delivery"};
inline constexpr Reply kBareLineEndingInBody{
    550, "5.6.11", "Bare CR or LF in message body (SMTP smuggling protection)"};
inline constexpr Reply kLineTooLongInBody{550, "5.5.2", "Line too long in message body"};
inline constexpr Reply kHeaderTooLarge{552, "5.3.4", "Header size exceeds fixed maximum"};
inline constexpr Reply kHopCountExceeded{554, "5.4.6", "Hop count exceeded - possible mail loop"};
// The next hop did not answer usably: the client must retry (nothing was acknowledged).
inline constexpr Reply kNextHopFailed{451, "4.4.0", "Next hop unavailable, try again later"};

// Closing the connection
inline constexpr Reply kTooManyErrors{
    421, "4.7.0", "Too many errors on this connection, closing transmission channel"};
inline constexpr Reply kTooManyLogonFailures{421, "4.7.0", "Too many failed logon attempts"};
inline constexpr Reply kLostSynchronization{
    421, "4.7.0", "Lost synchronization with client, closing transmission channel"};
inline constexpr Reply kTooMuchPipelinedInput{
    421, "4.7.0", "Too much pipelined input, closing transmission channel"};
}  // namespace replies

}  // namespace kuberelay::smtp
