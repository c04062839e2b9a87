// NAME
//   address.h - RFC 5321 envelope paths: reverse-path (MAIL FROM) and forward-path (RCPT TO)
// SYNOPSIS
//   Address a;
//   if (ParseError e = parsePath("<user@example.com>", AddressRole::Sender, false, a)) {
//     reply(*e.reply);
//   }
//   policy.mailFrom(a.toMailAddress(), size);
// DESCRIPTION
//   Accepts the null path "<>" (senders only), "<Postmaster>" (recipients only), dot-atom and
//   quoted local parts, LDH domain names, address literals [192.0.2.1] and [IPv6:2001:db8::1],
//   and source routes "<@a,@b:user@dom>", which are checked and then dropped (RFC 5321 §4.1.1.3,
//   appendix C). A path without angle brackets is accepted as well (as Exchange and Postfix do).
//   UTF-8 is allowed in the local part and the domain only when the transaction declared
//   SMTPUTF8 (RFC 6531); without it a non-ASCII address gets 553 5.6.7. Every length has the
//   RFC 5321 §4.5.3.1 limit. The parsed parts are views into the caller's text: a quoted local
//   part whose content needs no quoting is returned unquoted ("\"bob\"" is bob), any other keeps
//   its quotes so that it can be written back exactly.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "kuberelay/policy/engine.h"
#include "kuberelay/policy/reply.h"

namespace kuberelay::smtp {

// RFC 5321 §4.5.3.1.1-3.
inline constexpr size_t kMaxLocalPart = 64;
inline constexpr size_t kMaxDomain = 255;
inline constexpr size_t kMaxPath = 256;  // including the angle brackets

// A refusal while parsing: the exact reply, and a short label for metrics and logs.
struct ParseError {
  const policy::Reply* reply = nullptr;  // nullptr: no error
  std::string_view reason;
  explicit operator bool() const { return reply != nullptr; }
};

enum class AddressRole : uint8_t { Sender, Recipient };

struct Address {
  std::string_view local;   // "user", or "\"a b\"" when the quotes are needed; "Postmaster"
  std::string_view domain;  // "example.com", "[192.0.2.1]"; empty for <> and <Postmaster>
  bool isNull = false;      // the null reverse-path <>

  policy::MailAddress toMailAddress() const { return {local, domain, isNull}; }
  // The address as the policy must compare it: quoted-pairs resolved ("\"c\\eo\"" is ceo,
  // RFC 5322 3.2.4: the same mailbox) and the quotes dropped when the content needs none, so a
  // deny on ceo@ cannot be dodged by spelling it differently. `storage` holds the text when it
  // differs from the parsed view.
  policy::MailAddress canonical(std::string& storage) const;
};

// Parses one path ("<...>" or a bare address). `smtpUtf8`: the transaction declared SMTPUTF8.
ParseError parsePath(std::string_view path, AddressRole role, bool smtpUtf8, Address& out);

// The length of the path at the start of `text`: through the closing '>' (quoted strings may
// hold '>' and spaces), or up to the first space for a bare address. 0 if '<' is never closed.
size_t pathLength(std::string_view text);

// Whether `text` is well-formed UTF-8 (no overlong forms, surrogates or values past U+10FFFF).
bool isValidUtf8(std::string_view text);

}  // namespace kuberelay::smtp
