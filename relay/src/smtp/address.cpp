// NAME
//   address.cpp - RFC 5321 path grammar (§4.1.2), with RFC 6531 UTF-8 where declared
#include "kuberelay/smtp/address.h"

#include "ascii.h"
#include "kuberelay/policy/ip.h"
#include "kuberelay/smtp/replies.h"

namespace kuberelay::smtp {
namespace {

constexpr size_t kMaxLabel = 63;  // RFC 1035 §2.3.4

bool isAtext(char c) {
  if (isAsciiAlnum(c)) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '/':
    case '=':
    case '?':
    case '^':
    case '_':
    case '`':
    case '{':
    case '|':
    case '}':
    case '~':
      return true;
    default:
      return false;
  }
}

bool isNonAscii(char c) { return static_cast<unsigned char>(c) >= 0x80; }

// Length of the well-formed UTF-8 sequence starting at s[i], or 0.
size_t utf8Sequence(std::string_view s, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char b0 = byte(i);
  size_t n;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 < 0x80) return 1;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3;
    if (b0 == 0xE0) lo = 0xA0;  // overlong
    if (b0 == 0xED) hi = 0x9F;  // surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4;
    if (b0 == 0xF0) lo = 0x90;  // overlong
    if (b0 == 0xF4) hi = 0x8F;  // past U+10FFFF
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  }
  return n;
}

// atom *("." atom), atext or (with utf8) UTF-8 characters. Returns false if `s` is not one.
bool isDotString(std::string_view s, bool utf8) {
  if (s.empty() || s.front() == '.' || s.back() == '.') return false;
  for (size_t i = 0; i < s.size();) {
    char c = s[i];
    if (c == '.') {
      if (s[i + 1] == '.') return false;
      ++i;
    } else if (isAtext(c)) {
      ++i;
    } else if (utf8 && isNonAscii(c)) {
      size_t n = utf8Sequence(s, i);
      if (n == 0) return false;
      i += n;
    } else {
      return false;
    }
  }
  return true;
}

// sub-domain *("." sub-domain), LDH labels (U-labels with utf8).
bool isDomainName(std::string_view d, bool utf8) {
  if (d.empty() || d.size() > kMaxDomain) return false;
  size_t labelStart = 0;
  for (size_t i = 0; i <= d.size();) {
    if (i == d.size() || d[i] == '.') {
      std::string_view label = d.substr(labelStart, i - labelStart);
      if (label.empty() || label.size() > kMaxLabel) return false;
      if (label.front() == '-' || label.back() == '-') return false;
      labelStart = ++i;
      continue;
    }
    char c = d[i];
    if (isAsciiAlnum(c) || c == '-') {
      ++i;
    } else if (utf8 && isNonAscii(c)) {
      size_t n = utf8Sequence(d, i);
      if (n == 0) return false;
      i += n;
    } else {
      return false;
    }
  }
  return true;
}

// "[192.0.2.1]" or "[IPv6:2001:db8::1]". General address literals ("[tag:...]") are refused:
// nothing could route to them.
bool isAddressLiteral(std::string_view d) {
  if (d.size() < 3 || d.front() != '[' || d.back() != ']') return false;
  std::string_view inner = d.substr(1, d.size() - 2);
  if (istartsWith(inner, "IPv6:")) {
    inner.remove_prefix(5);
    if (inner.find(':') == std::string_view::npos || inner.find('%') != std::string_view::npos) {
      return false;
    }
    return policy::IpAddress::parse(inner).has_value();
  }
  if (inner.find(':') != std::string_view::npos) return false;
  return policy::IpAddress::parse(inner).has_value();
}

bool isDomain(std::string_view d, bool utf8) {
  return d.size() <= kMaxDomain && (isDomainName(d, utf8) || isAddressLiteral(d));
}

// A-d-l = At-domain *( "," At-domain ), At-domain = "@" Domain.
bool isSourceRoute(std::string_view route) {
  size_t pos = 0;
  for (;;) {
    if (pos >= route.size() || route[pos] != '@') return false;
    size_t end = route.find(',', pos);
    std::string_view domain =
        route.substr(pos + 1, end == std::string_view::npos ? route.npos : end - pos - 1);
    if (!isDomainName(domain, false)) return false;
    if (end == std::string_view::npos) return true;
    pos = end + 1;
  }
}

// The end of a Quoted-string starting at s[0] == '"' (one past the closing quote), or 0.
size_t quotedStringEnd(std::string_view s, bool utf8) {
  for (size_t i = 1; i < s.size();) {
    char c = s[i];
    if (c == '"') return i + 1;
    if (c == '\\') {
      // quoted-pair: backslash followed by %d32-126
      if (i + 1 >= s.size() || s[i + 1] < 32 || s[i + 1] > 126) return 0;
      i += 2;
    } else if (c >= 32 && c <= 126) {
      ++i;  // qtextSMTP: %d32-33 / %d35-91 / %d93-126 ('"' and '\' handled above)
    } else if (utf8 && isNonAscii(c)) {
      size_t n = utf8Sequence(s, i);
      if (n == 0) return 0;
      i += n;
    } else {
      return 0;
    }
  }
  return 0;
}

}  // namespace

bool isValidUtf8(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    size_t n = utf8Sequence(text, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

size_t pathLength(std::string_view text) {
  if (text.empty()) return 0;
  if (text.front() != '<') {
    size_t space = text.find(' ');
    return space == std::string_view::npos ? text.size() : space;
  }
  bool quoted = false;
  for (size_t i = 1; i < text.size(); ++i) {
    char c = text[i];
    if (quoted && c == '\\') {
      ++i;
    } else if (c == '"') {
      quoted = !quoted;
    } else if (c == '>' && !quoted) {
      return i + 1;
    }
  }
  return 0;
}

ParseError parsePath(std::string_view path, AddressRole role, bool smtpUtf8, Address& out) {
  const ParseError bad{role == AddressRole::Sender ? &replies::kBadSender : &replies::kBadRecipient,
                       "bad_address"};
  out = Address{};
  std::string_view inner = path;
  if (!path.empty() && path.front() == '<') {
    if (path.size() < 2 || path.back() != '>') return bad;
    inner = path.substr(1, path.size() - 2);
  } else if (path.size() + 2 > kMaxPath) {
    return bad;
  }
  if (path.size() > kMaxPath) return bad;
  for (char c : inner) {
    if (isNonAscii(c) && !smtpUtf8) return {&replies::kNonAsciiAddress, "non_ascii_address"};
  }
  if (inner.empty()) {
    if (role != AddressRole::Sender || path.empty()) return bad;
    out.isNull = true;
    return {};
  }
  if (inner.front() == '@') {
    // Source route: checked, then ignored (RFC 5321 §4.1.1.3: servers SHOULD ignore it).
    size_t colon = inner.find(':');
    if (colon == std::string_view::npos || !isSourceRoute(inner.substr(0, colon))) return bad;
    inner.remove_prefix(colon + 1);
  }
  std::string_view local;
  size_t at;
  if (!inner.empty() && inner.front() == '"') {
    size_t end = quotedStringEnd(inner, smtpUtf8);
    if (end == 0 || end >= inner.size() || inner[end] != '@') return bad;
    local = inner.substr(0, end);
    at = end;
    // "\"bob\"" is bob: drop quotes that are not needed, so policy comparisons see one form.
    std::string_view content = local.substr(1, local.size() - 2);
    if (content.find('\\') == std::string_view::npos && isDotString(content, smtpUtf8)) {
      local = content;
    }
  } else {
    at = inner.rfind('@');
    if (at == std::string_view::npos) {
      // RFC 5321 §4.1.1.3: "Postmaster" without a domain is a valid forward-path.
      if (role == AddressRole::Recipient && iequals(inner, "postmaster")) {
        out.local = inner;
        return {};
      }
      return bad;
    }
    local = inner.substr(0, at);
    if (!isDotString(local, smtpUtf8)) return bad;
  }
  std::string_view domain = inner.substr(at + 1);
  if (inner.substr(0, at).size() > kMaxLocalPart || !isDomain(domain, smtpUtf8)) return bad;
  out.local = local;
  out.domain = domain;
  return {};
}

policy::MailAddress Address::canonical(std::string& storage) const {
  if (local.size() < 2 || local.front() != '"' || local.find('\\') == std::string_view::npos) {
    return toMailAddress();
  }
  std::string content;
  for (size_t i = 1; i + 1 < local.size(); ++i) {
    if (local[i] == '\\' && i + 2 < local.size()) ++i;  // quoted-pair: the next octet, as is
    content += local[i];
  }
  if (isDotString(content, true)) {
    storage = std::move(content);
  } else {
    storage.assign(1, '"');
    for (char c : content) {
      if (c == '"' || c == '\\') storage.push_back('\\');
      storage.push_back(c);
    }
    storage.push_back('"');
  }
  return {storage, domain, isNull};
}

}  // namespace kuberelay::smtp
