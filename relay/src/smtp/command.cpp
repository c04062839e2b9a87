// NAME
//   command.cpp - the verb table and the MAIL, RCPT, BDAT and AUTH argument grammars
#include "kuberelay/smtp/command.h"

#include <array>

#include "ascii.h"
#include "kuberelay/smtp/replies.h"

namespace kuberelay::smtp {
namespace {

using namespace command_flag;

// RFC 1870 allows any number of digits; 20 already exceeds 2^64, so longer is a syntax error.
constexpr size_t kMaxNumberDigits = 20;
// RFC 4422 §3.1: a SASL mechanism name is at most 20 characters.
constexpr size_t kMaxMechanismName = 20;

constexpr std::array<CommandSpec, 14> kCommands{{
    {"HELO", Verb::Helo, kArgumentRequired, &replies::kHeloSyntax},
    {"EHLO", Verb::Ehlo, kArgumentRequired, &replies::kEhloSyntax},
    {"MAIL", Verb::Mail, kArgumentRequired | kNeedsHello, &replies::kMailSyntax},
    {"RCPT", Verb::Rcpt, kArgumentRequired | kNeedsHello, &replies::kRcptSyntax},
    {"DATA", Verb::Data, kNoArgument | kNeedsHello, &replies::kNoArgumentsAllowed},
    {"BDAT", Verb::Bdat, kArgumentRequired | kNeedsHello, &replies::kBdatSyntax},
    {"RSET", Verb::Rset, kNoArgument, &replies::kNoArgumentsAllowed},
    {"NOOP", Verb::Noop, 0, nullptr},
    {"QUIT", Verb::Quit, kNoArgument, &replies::kNoArgumentsAllowed},
    {"VRFY", Verb::Vrfy, kArgumentRequired, &replies::kVrfySyntax},
    {"HELP", Verb::Help, 0, nullptr},
    {"STARTTLS", Verb::StartTls, kNoArgument | kNeedsHello | kNotInTransaction,
     &replies::kNoArgumentsAllowed},
    {"AUTH", Verb::Auth, kArgumentRequired | kNeedsHello | kNotInTransaction,
     &replies::kAuthSyntax},
    {"", Verb::Unknown, 0, &replies::kUnrecognizedCommand},
}};

// Parses 1*DIGIT without overflow.
std::optional<uint64_t> parseNumber(std::string_view s) {
  if (s.empty() || s.size() > kMaxNumberDigits) return std::nullopt;
  uint64_t value = 0;
  for (char c : s) {
    if (!isAsciiDigit(c)) return std::nullopt;
    uint64_t digit = static_cast<uint64_t>(c - '0');
    if (value > (UINT64_MAX - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

// esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
bool isEsmtpKeyword(std::string_view s) {
  if (s.empty() || !isAsciiAlnum(s.front())) return false;
  for (char c : s) {
    if (!isAsciiAlnum(c) && c != '-') return false;
  }
  return true;
}

// esmtp-value = 1*(%d33-60 / %d62-126)
bool isEsmtpValue(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < 33 || c > 126 || c == '=') return false;
  }
  return true;
}

struct Parameter {
  std::string_view keyword;
  std::optional<std::string_view> value;
};

// Calls `handle(Parameter)` for each "keyword[=value]" of a space-separated list; stops at
// the first error.
template <class Handler>
ParseError forEachParameter(std::string_view list, Handler&& handle) {
  size_t pos = 0;
  while (pos < list.size()) {
    if (list[pos] == ' ') {
      ++pos;
      continue;
    }
    size_t end = list.find(' ', pos);
    std::string_view token =
        list.substr(pos, end == std::string_view::npos ? list.npos : end - pos);
    pos = end == std::string_view::npos ? list.size() : end;
    Parameter p;
    size_t eq = token.find('=');
    p.keyword = token.substr(0, eq);
    if (eq != std::string_view::npos) p.value = token.substr(eq + 1);
    if (!isEsmtpKeyword(p.keyword) || (p.value && !isEsmtpValue(*p.value))) {
      return {&replies::kParameterSyntax, "parameter_syntax"};
    }
    if (ParseError e = handle(p)) return e;
  }
  return {};
}

ParseError unsupported() { return {&replies::kUnsupportedParameter, "unsupported_parameter"}; }
ParseError badParameter() { return {&replies::kParameterSyntax, "parameter_syntax"}; }

ParseError parseMailParameters(std::string_view list, MailParameters& out) {
  bool seenAuth = false;
  return forEachParameter(list, [&](const Parameter& p) -> ParseError {
    if (iequals(p.keyword, "SIZE")) {
      if (out.size || !p.value) return badParameter();
      out.size = parseNumber(*p.value);
      if (!out.size) return badParameter();
    } else if (iequals(p.keyword, "BODY")) {
      if (out.body != BodyType::Unspecified || !p.value) return badParameter();
      if (iequals(*p.value, "7BIT")) {
        out.body = BodyType::SevenBit;
      } else if (iequals(*p.value, "8BITMIME")) {
        out.body = BodyType::EightBitMime;
      } else if (iequals(*p.value, "BINARYMIME")) {
        out.body = BodyType::BinaryMime;
      } else {
        return badParameter();
      }
    } else if (iequals(p.keyword, "SMTPUTF8")) {
      if (out.smtpUtf8 || p.value) return badParameter();
      out.smtpUtf8 = true;
    } else if (iequals(p.keyword, "AUTH")) {
      // RFC 4954 §5: AUTH=<mailbox> from a trusted client; clients send AUTH=<> routinely.
      // It is ignored: the sender is whoever authenticated on this session.
      if (seenAuth || !p.value) return badParameter();
      seenAuth = true;
    } else {
      return unsupported();
    }
    return {};
  });
}

// "FROM:" or "TO:" then optional blanks (tolerated, as Exchange and Postfix do) then the path.
// Splits the path from the parameter list that follows it.
bool splitPath(std::string_view argument, std::string_view keyword, std::string_view& path,
               std::string_view& rest) {
  if (!istartsWith(argument, keyword)) return false;
  argument.remove_prefix(keyword.size());
  while (!argument.empty() && argument.front() == ' ') argument.remove_prefix(1);
  if (argument.empty()) return false;
  size_t len = pathLength(argument);
  path = argument.substr(0, len);
  rest = argument.substr(len);
  return true;
}

}  // namespace

const CommandSpec& commandSpec(Verb verb) { return kCommands[static_cast<size_t>(verb)]; }

const char* toString(BodyType type) {
  switch (type) {
    case BodyType::Unspecified:
      return "";
    case BodyType::SevenBit:
      return "7BIT";
    case BodyType::EightBitMime:
      return "8BITMIME";
    case BodyType::BinaryMime:
      return "BINARYMIME";
  }
  return "";
}

Command parseCommand(std::string_view line) {
  size_t space = line.find(' ');
  std::string_view name = line.substr(0, space);
  Command c;
  for (const CommandSpec& spec : kCommands) {
    if (spec.verb != Verb::Unknown && iequals(spec.name, name)) {
      c.verb = spec.verb;
      break;
    }
  }
  if (space != std::string_view::npos) c.argument = trimBlanks(line.substr(space + 1));
  return c;
}

ParseError parseMailFrom(std::string_view argument, MailFromArguments& out) {
  out = MailFromArguments{};
  std::string_view path, rest;
  if (!splitPath(argument, "FROM:", path, rest)) return {&replies::kMailSyntax, "syntax"};
  if (path.empty() || (!rest.empty() && rest.front() != ' ')) {
    return {&replies::kBadSender, "bad_address"};
  }
  if (ParseError e = parseMailParameters(rest, out.params)) return e;
  return parsePath(path, AddressRole::Sender, out.params.smtpUtf8, out.sender);
}

ParseError parseRcptTo(std::string_view argument, bool smtpUtf8, RcptToArguments& out) {
  out = RcptToArguments{};
  std::string_view path, rest;
  if (!splitPath(argument, "TO:", path, rest)) return {&replies::kRcptSyntax, "syntax"};
  if (path.empty() || (!rest.empty() && rest.front() != ' ')) {
    return {&replies::kBadRecipient, "bad_address"};
  }
  // No RCPT parameter is advertised (no DSN), so any is unsupported.
  if (ParseError e = forEachParameter(rest, [](const Parameter&) { return unsupported(); })) {
    return e;
  }
  return parsePath(path, AddressRole::Recipient, smtpUtf8, out.recipient);
}

ParseError parseBdat(std::string_view argument, BdatArguments& out) {
  out = BdatArguments{};
  const ParseError bad{&replies::kBdatSyntax, "syntax"};
  size_t space = argument.find(' ');
  auto size = parseNumber(argument.substr(0, space));
  if (!size) return bad;
  out.size = *size;
  if (space != std::string_view::npos) {
    if (!iequals(trimBlanks(argument.substr(space + 1)), "LAST")) return bad;
    out.last = true;
  }
  return {};
}

ParseError parseAuth(std::string_view argument, AuthArguments& out) {
  out = AuthArguments{};
  const ParseError bad{&replies::kAuthSyntax, "syntax"};
  size_t space = argument.find(' ');
  out.mechanism = argument.substr(0, space);
  if (out.mechanism.empty() || out.mechanism.size() > kMaxMechanismName) return bad;
  for (char c : out.mechanism) {
    if (!isAsciiAlnum(c) && c != '-' && c != '_') return bad;
  }
  if (space != std::string_view::npos) {
    std::string_view response = trimBlanks(argument.substr(space + 1));
    if (response.empty() || response.find(' ') != std::string_view::npos) return bad;
    out.initialResponse = response;
  }
  return {};
}

}  // namespace kuberelay::smtp
