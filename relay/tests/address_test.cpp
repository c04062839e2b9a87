// Envelope path grammar: RFC 5321 §4.1.2 with the §4.5.3.1 limits and RFC 6531 UTF-8.
#include <gtest/gtest.h>

#include <string>

#include "kuberelay/smtp/address.h"
#include "kuberelay/smtp/replies.h"

namespace kuberelay::smtp {
namespace {

struct Parsed {
  bool ok;
  std::string local, domain;
  bool isNull;
  std::string reply;  // "501 5.1.7" when refused
};

Parsed parse(std::string_view path, AddressRole role = AddressRole::Sender, bool utf8 = false) {
  Address a;
  ParseError e = parsePath(path, role, utf8, a);
  if (e)
    return {false, "", "", false,
            std::to_string(e.reply->code) + " " + std::string(e.reply->enhanced)};
  return {true, std::string(a.local), std::string(a.domain), a.isNull, ""};
}

// RFC 5322 3.2.4: a quoted-pair is the character itself, so these name one mailbox, and the
// policy must see one spelling (found by the adversarial tier: a sendAs deny on ceo@ was dodged).
TEST(Address, CanonicalFormResolvesQuotedPairs) {
  auto canonical = [](std::string_view path) {
    Address a;
    EXPECT_FALSE(parsePath(path, AddressRole::Sender, false, a)) << path;
    std::string storage;
    policy::MailAddress m = a.canonical(storage);
    return std::string(m.local) + "@" + std::string(m.domain);
  };
  EXPECT_EQ(canonical("<\"c\\eo\"@example.com>"), "ceo@example.com");
  EXPECT_EQ(canonical("<\"\\c\\e\\o\"@example.com>"), "ceo@example.com");
  EXPECT_EQ(canonical("<\"ceo\"@example.com>"), "ceo@example.com");
  EXPECT_EQ(canonical("<ceo@example.com>"), "ceo@example.com");
  // Content that needs quotes keeps them, with the minimal escapes.
  EXPECT_EQ(canonical("<\"a\\ b\"@example.com>"), "\"a b\"@example.com");
  EXPECT_EQ(canonical("<\"a\\\"b\"@example.com>"), "\"a\\\"b\"@example.com");
}

TEST(Address, PlainAddress) {
  Parsed p = parse("<user@example.com>");
  EXPECT_TRUE(p.ok);
  EXPECT_EQ(p.local, "user");
  EXPECT_EQ(p.domain, "example.com");
  EXPECT_FALSE(p.isNull);
}

TEST(Address, DotAtomLocalPartsWithEveryAtextCharacter) {
  EXPECT_TRUE(parse("<first.last@example.com>").ok);
  EXPECT_TRUE(parse("<a!#$%&'*+-/=?^_`{|}~z@example.com>").ok);
  EXPECT_FALSE(parse("<.lead@example.com>").ok);
  EXPECT_FALSE(parse("<trail.@example.com>").ok);
  EXPECT_FALSE(parse("<two..dots@example.com>").ok);
  EXPECT_FALSE(parse("<a(b)@example.com>").ok);
  EXPECT_FALSE(parse("<a,b@example.com>").ok);
}

TEST(Address, NullPathOnlyForSenders) {
  EXPECT_TRUE(parse("<>").isNull);
  EXPECT_EQ(parse("<>", AddressRole::Recipient).reply, "501 5.1.3");
}

TEST(Address, PostmasterWithoutDomainOnlyForRecipients) {
  Parsed p = parse("<Postmaster>", AddressRole::Recipient);
  EXPECT_TRUE(p.ok);
  EXPECT_EQ(p.local, "Postmaster");
  EXPECT_EQ(p.domain, "");
  EXPECT_TRUE(parse("<POSTMASTER>", AddressRole::Recipient).ok);
  EXPECT_EQ(parse("<postmaster>", AddressRole::Sender).reply, "501 5.1.7");
  EXPECT_EQ(parse("<user>", AddressRole::Recipient).reply, "501 5.1.3");
}

TEST(Address, SourceRoutesAreCheckedAndDropped) {
  Parsed p = parse("<@relay1.example,@relay2.example:user@example.com>", AddressRole::Recipient);
  EXPECT_TRUE(p.ok);
  EXPECT_EQ(p.local, "user");
  EXPECT_EQ(p.domain, "example.com");
  EXPECT_TRUE(parse("<@relay.example:user@example.com>").ok);
  EXPECT_FALSE(parse("<@relay.example user@example.com>").ok);  // no colon
  EXPECT_FALSE(parse("<@:user@example.com>").ok);
  EXPECT_FALSE(parse("<@relay..example:user@example.com>").ok);
  EXPECT_FALSE(parse("<@a,b:user@example.com>").ok);
}

TEST(Address, QuotedLocalParts) {
  Parsed needed = parse("<\"john doe\"@example.com>");
  EXPECT_TRUE(needed.ok);
  EXPECT_EQ(needed.local, "\"john doe\"");
  // Quotes that are not needed are dropped, so that policy comparisons see one spelling.
  Parsed plain = parse("<\"bob\"@example.com>");
  EXPECT_EQ(plain.local, "bob");
  Parsed escaped = parse("<\"a\\\"b\"@example.com>");
  EXPECT_TRUE(escaped.ok);
  EXPECT_EQ(escaped.local, "\"a\\\"b\"");
  // '@' and '>' inside quotes are content.
  Parsed routed = parse("<\"a@b>c\"@example.com>", AddressRole::Recipient);
  EXPECT_TRUE(routed.ok);
  EXPECT_EQ(routed.local, "\"a@b>c\"");
  EXPECT_FALSE(parse("<\"unterminated@example.com>").ok);
  EXPECT_FALSE(parse("<\"tab\there\"@example.com>").ok);
  EXPECT_FALSE(parse("<\"x\"y@example.com>").ok);
}

TEST(Address, DomainsAreLdhLabels) {
  EXPECT_TRUE(parse("<u@sub-domain.example.com>").ok);
  EXPECT_TRUE(parse("<u@localhost>").ok);
  EXPECT_TRUE(parse("<u@123.example>").ok);
  EXPECT_FALSE(parse("<u@-lead.example>").ok);
  EXPECT_FALSE(parse("<u@trail-.example>").ok);
  EXPECT_FALSE(parse("<u@under_score.example>").ok);
  EXPECT_FALSE(parse("<u@example.com.>").ok);
  EXPECT_FALSE(parse("<u@.example.com>").ok);
  EXPECT_FALSE(parse("<u@>").ok);
  EXPECT_FALSE(parse("<@example.com>").ok);
  EXPECT_FALSE(parse("<u@exa mple.com>").ok);
  EXPECT_TRUE(parse("<u@" + std::string(63, 'a') + ".example>").ok);
  EXPECT_FALSE(parse("<u@" + std::string(64, 'a') + ".example>").ok);
}

TEST(Address, AddressLiterals) {
  Parsed v4 = parse("<u@[192.0.2.1]>");
  EXPECT_TRUE(v4.ok);
  EXPECT_EQ(v4.domain, "[192.0.2.1]");
  EXPECT_TRUE(parse("<u@[IPv6:2001:db8::1]>").ok);
  EXPECT_TRUE(parse("<u@[ipv6:::1]>").ok);
  EXPECT_FALSE(parse("<u@[192.0.2.256]>").ok);
  EXPECT_FALSE(parse("<u@[192.0.2]>").ok);
  EXPECT_FALSE(parse("<u@[2001:db8::1]>").ok);  // IPv6 needs its tag
  EXPECT_FALSE(parse("<u@[IPv6:192.0.2.1]>").ok);
  EXPECT_FALSE(parse("<u@[IPv6:fe80::1%eth0]>").ok);
  EXPECT_FALSE(parse("<u@[x400:whatever]>").ok);
  EXPECT_FALSE(parse("<u@[]>").ok);
}

TEST(Address, LengthLimits) {
  const std::string local64(64, 'l');
  EXPECT_TRUE(parse("<" + local64 + "@example.com>").ok);
  EXPECT_EQ(parse("<" + local64 + "l@example.com>").reply, "501 5.1.7");
  // A 255-octet domain fits the domain limit but not the 256-octet path limit.
  std::string domain;
  while (domain.size() < 240) domain += std::string(59, 'd') + ".";
  domain += "example";  // 247 octets
  EXPECT_TRUE(parse("<u@" + domain + ">").ok);
  EXPECT_EQ(parse("<uuuuuuuu@" + domain + ">").reply, "501 5.1.7");
  EXPECT_EQ(parse("<uuuuuuuu@" + domain + ">", AddressRole::Recipient).reply, "501 5.1.3");
  EXPECT_FALSE(parse("<u@" + std::string(256, 'd') + ">").ok);
}

TEST(Address, BareAddressesWithoutAngleBrackets) {
  Parsed p = parse("user@example.com");
  EXPECT_TRUE(p.ok);
  EXPECT_EQ(p.local, "user");
  EXPECT_FALSE(parse("").ok);
  EXPECT_FALSE(parse("<user@example.com").ok);
}

TEST(Address, SpacesAndControlCharactersAreRefused) {
  EXPECT_FALSE(parse("<us er@example.com>").ok);
  EXPECT_FALSE(parse(std::string("<us\x01r@example.com>")).ok);
  EXPECT_FALSE(parse(std::string("<user@exam\x7fple.com>")).ok);
  EXPECT_FALSE(parse(std::string("<user@example.com\0>", 19)).ok);
  EXPECT_FALSE(parse("< user@example.com>").ok);
}

TEST(Address, Utf8NeedsSmtpUtf8) {
  const std::string local = "<j\xc3\xb6rg@example.com>";  // jörg
  const std::string domain =
      "<user@b\xc3\xbc"
      "cher.example>";  // bücher
  EXPECT_EQ(parse(local).reply, "553 5.6.7");
  EXPECT_EQ(parse(domain, AddressRole::Recipient).reply, "553 5.6.7");
  Parsed p = parse(local, AddressRole::Sender, true);
  EXPECT_TRUE(p.ok);
  EXPECT_EQ(p.local, "j\xc3\xb6rg");
  EXPECT_TRUE(parse(domain, AddressRole::Recipient, true).ok);
  EXPECT_TRUE(parse("<\"\xe5\x90\x8d \xe5\x89\x8d\"@example.com>", AddressRole::Sender, true).ok);
  // Malformed UTF-8 is refused even with SMTPUTF8.
  EXPECT_FALSE(parse("<j\xc3(rg@example.com>", AddressRole::Sender, true).ok);
  EXPECT_FALSE(parse("<\xc0\xafx@example.com>", AddressRole::Sender, true).ok);      // overlong
  EXPECT_FALSE(parse("<\xed\xa0\x80x@example.com>", AddressRole::Sender, true).ok);  // surrogate
  EXPECT_FALSE(parse("<user@b\xc3\xbc\xc3"
                     ".example>",
                     AddressRole::Sender, true)
                   .ok);
}

TEST(Address, Utf8Validation) {
  EXPECT_TRUE(isValidUtf8("plain"));
  EXPECT_TRUE(isValidUtf8("\xf0\x9f\x93\xa7"));   // U+1F4E7
  EXPECT_FALSE(isValidUtf8("\xf4\x90\x80\x80"));  // past U+10FFFF
  EXPECT_FALSE(isValidUtf8("\xe0\x80\xaf"));      // overlong
  EXPECT_FALSE(isValidUtf8("\xf0\x9f\x93"));      // truncated
}

TEST(Address, PathLengthFindsTheClosingBracketOutsideQuotes) {
  EXPECT_EQ(pathLength("<a@b> SIZE=1"), 5u);
  EXPECT_EQ(pathLength("<\"x> y\"@b> SIZE=1"), 10u);
  EXPECT_EQ(pathLength("<\"x\\\"> y\"@b>"), 12u);
  EXPECT_EQ(pathLength("a@b SIZE=1"), 3u);
  EXPECT_EQ(pathLength("<a@b"), 0u);
}

TEST(Address, ConvertsToThePolicyAddress) {
  Address a;
  ASSERT_FALSE(parsePath("<@r.example:Bob@Example.COM>", AddressRole::Sender, false, a));
  policy::MailAddress m = a.toMailAddress();
  EXPECT_EQ(m.local, "Bob");
  EXPECT_EQ(m.domain, "Example.COM");
  EXPECT_FALSE(m.isNull);
}

}  // namespace
}  // namespace kuberelay::smtp
