// NAME
//   command.h - SMTP command lines: the verb table and the argument parsers
// SYNOPSIS
//   Command c = parseCommand("MAIL FROM:<a@example.com> SIZE=1024");
//   const CommandSpec& spec = commandSpec(c.verb);   // flags: needs hello, takes no argument...
//   MailFromArguments mail;
//   if (ParseError e = parseMailFrom(c.argument, mail)) reply(*e.reply);
// DESCRIPTION
//   A command line arrives without its CRLF (line_reader.h has already refused bare CR, LF and
//   NUL). Verbs are case-insensitive. The command table says, per verb, what the session must
//   check before the verb runs (Postfix's smtpd_cmd_table idea); the argument parsers return
//   the exact reply for each refusal: 501 5.5.4 for syntax, 501 5.1.7 / 5.1.3 for a bad
//   address, 555 5.5.4 for a parameter this server does not support (RFC 5321 §4.1.1.11).
//   Parsed values are views into the line.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "kuberelay/policy/reply.h"
#include "kuberelay/smtp/address.h"

namespace kuberelay::smtp {

enum class Verb : uint8_t {
  Helo,
  Ehlo,
  Mail,
  Rcpt,
  Data,
  Bdat,
  Rset,
  Noop,
  Quit,
  Vrfy,
  Help,
  StartTls,
  Auth,
  Unknown,
};

namespace command_flag {
inline constexpr uint8_t kArgumentRequired = 1;  // else the verb's syntax reply
inline constexpr uint8_t kNoArgument = 2;        // else 501 5.5.4 no arguments allowed
inline constexpr uint8_t kNeedsHello = 4;        // else 503 5.5.2 Send hello first
inline constexpr uint8_t kNotInTransaction = 8;  // else 503 5.5.1 Bad sequence of commands
}  // namespace command_flag

struct CommandSpec {
  std::string_view name;
  Verb verb;
  uint8_t flags;
  const policy::Reply* syntax;  // the reply to a missing or malformed argument
};

const CommandSpec& commandSpec(Verb verb);

struct Command {
  Verb verb = Verb::Unknown;
  std::string_view argument;  // after the verb, surrounding blanks removed
};

Command parseCommand(std::string_view line);

// ESMTP parameters of MAIL FROM (RFC 1870 SIZE, RFC 6152 / 3030 BODY, RFC 6531 SMTPUTF8,
// RFC 4954 AUTH=, which is accepted and ignored).
enum class BodyType : uint8_t { Unspecified, SevenBit, EightBitMime, BinaryMime };
const char* toString(BodyType type);

struct MailParameters {
  std::optional<uint64_t> size;
  BodyType body = BodyType::Unspecified;
  bool smtpUtf8 = false;
};

struct MailFromArguments {
  Address sender;
  MailParameters params;
};
// `argument`: "FROM:<path> [params]".
ParseError parseMailFrom(std::string_view argument, MailFromArguments& out);

struct RcptToArguments {
  Address recipient;
};
// `argument`: "TO:<path> [params]"; `smtpUtf8`: the transaction's MAIL FROM declared SMTPUTF8.
ParseError parseRcptTo(std::string_view argument, bool smtpUtf8, RcptToArguments& out);

// RFC 3030: "BDAT <size> [LAST]".
struct BdatArguments {
  uint64_t size = 0;
  bool last = false;
};
ParseError parseBdat(std::string_view argument, BdatArguments& out);

// RFC 4954: "AUTH <mechanism> [initial-response]".
struct AuthArguments {
  std::string_view mechanism;
  std::optional<std::string_view> initialResponse;  // "=" stands for an empty response
};
ParseError parseAuth(std::string_view argument, AuthArguments& out);

}  // namespace kuberelay::smtp
