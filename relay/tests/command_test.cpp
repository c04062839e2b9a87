// Command lines: the verb table and the MAIL/RCPT/BDAT/AUTH argument grammars.
#include <gtest/gtest.h>

#include <string>

#include "kuberelay/smtp/command.h"

namespace kuberelay::smtp {
namespace {

std::string replyOf(ParseError e) {
  if (!e) return "ok";
  return std::to_string(e.reply->code) + " " + std::string(e.reply->enhanced) + " " +
         std::string(e.reply->text);
}

TEST(Command, VerbsAreCaseInsensitive) {
  struct Case {
    const char* line;
    Verb verb;
    const char* argument;
  };
  const Case cases[] = {
      {"HELO client.example", Verb::Helo, "client.example"},
      {"ehlo client.example", Verb::Ehlo, "client.example"},
      {"Mail FROM:<a@b.example>", Verb::Mail, "FROM:<a@b.example>"},
      {"rCpT TO:<a@b.example>", Verb::Rcpt, "TO:<a@b.example>"},
      {"DATA", Verb::Data, ""},
      {"bdat 10 LAST", Verb::Bdat, "10 LAST"},
      {"RSET", Verb::Rset, ""},
      {"NOOP anything", Verb::Noop, "anything"},
      {"quit", Verb::Quit, ""},
      {"VRFY someone", Verb::Vrfy, "someone"},
      {"HELP", Verb::Help, ""},
      {"StartTLS", Verb::StartTls, ""},
      {"AUTH PLAIN AGFiAGM=", Verb::Auth, "PLAIN AGFiAGM="},
      {"EXPN list", Verb::Unknown, "list"},
      {"MAILX FROM:<a@b>", Verb::Unknown, "FROM:<a@b>"},
      {"", Verb::Unknown, ""},
      {" HELO x", Verb::Unknown, "HELO x"},
  };
  for (const Case& c : cases) {
    Command cmd = parseCommand(c.line);
    EXPECT_EQ(cmd.verb, c.verb) << c.line;
    EXPECT_EQ(cmd.argument, c.argument) << c.line;
  }
}

TEST(Command, ArgumentBlanksAreTrimmed) {
  EXPECT_EQ(parseCommand("EHLO   host.example  \t").argument, "host.example");
  EXPECT_EQ(parseCommand("DATA ").argument, "");
}

TEST(Command, TableFlags) {
  using namespace command_flag;
  EXPECT_TRUE(commandSpec(Verb::Mail).flags & kNeedsHello);
  EXPECT_TRUE(commandSpec(Verb::Data).flags & kNoArgument);
  EXPECT_TRUE(commandSpec(Verb::Auth).flags & kNotInTransaction);
  EXPECT_TRUE(commandSpec(Verb::StartTls).flags & kNotInTransaction);
  EXPECT_FALSE(commandSpec(Verb::Noop).flags & kNeedsHello);
  EXPECT_EQ(commandSpec(Verb::Ehlo).name, "EHLO");
  EXPECT_EQ(commandSpec(Verb::Unknown).verb, Verb::Unknown);
  for (int v = 0; v <= static_cast<int>(Verb::Unknown); ++v) {
    EXPECT_EQ(static_cast<int>(commandSpec(static_cast<Verb>(v)).verb), v);
  }
}

TEST(MailFrom, PathAndParameters) {
  MailFromArguments m;
  ASSERT_EQ(replyOf(parseMailFrom("FROM:<a@example.com> SIZE=1024 BODY=8BITMIME SMTPUTF8", m)),
            "ok");
  EXPECT_EQ(m.sender.local, "a");
  EXPECT_EQ(m.sender.domain, "example.com");
  EXPECT_EQ(m.params.size, 1024u);
  EXPECT_EQ(m.params.body, BodyType::EightBitMime);
  EXPECT_TRUE(m.params.smtpUtf8);

  ASSERT_EQ(replyOf(parseMailFrom("from:<>", m)), "ok");
  EXPECT_TRUE(m.sender.isNull);
  EXPECT_FALSE(m.params.size);

  ASSERT_EQ(replyOf(parseMailFrom("FROM: <a@example.com>", m)), "ok");  // tolerated blank
  ASSERT_EQ(replyOf(parseMailFrom("FROM:a@example.com SIZE=5", m)), "ok");
  EXPECT_EQ(m.params.size, 5u);
  ASSERT_EQ(replyOf(parseMailFrom("FROM:<a@example.com> body=7bit size=0", m)), "ok");
  EXPECT_EQ(m.params.body, BodyType::SevenBit);
  ASSERT_EQ(replyOf(parseMailFrom("FROM:<a@example.com> BODY=BINARYMIME", m)), "ok");
  EXPECT_EQ(m.params.body, BodyType::BinaryMime);
  // RFC 4954 §5: AUTH=<> is sent by authenticated clients; accepted and ignored.
  EXPECT_EQ(replyOf(parseMailFrom("FROM:<a@example.com> AUTH=<>", m)), "ok");
}

TEST(MailFrom, Refusals) {
  MailFromArguments m;
  EXPECT_EQ(replyOf(parseMailFrom("<a@example.com>", m)), "501 5.5.4 Syntax: MAIL FROM:<address>");
  EXPECT_EQ(replyOf(parseMailFrom("FROM:", m)), "501 5.5.4 Syntax: MAIL FROM:<address>");
  EXPECT_EQ(replyOf(parseMailFrom("TO:<a@example.com>", m)),
            "501 5.5.4 Syntax: MAIL FROM:<address>");
  EXPECT_EQ(replyOf(parseMailFrom("FROM:<a@example.com", m)),
            "501 5.1.7 Bad sender address syntax");
  EXPECT_EQ(replyOf(parseMailFrom("FROM:<a@example.com>x", m)),
            "501 5.1.7 Bad sender address syntax");
  EXPECT_EQ(replyOf(parseMailFrom("FROM:<a b@example.com>", m)),
            "501 5.1.7 Bad sender address syntax");
  EXPECT_EQ(replyOf(parseMailFrom("FROM:<a@example.com> SIZE=x", m)),
            "501 5.5.4 Syntax error in parameters");
  EXPECT_EQ(replyOf(parseMailFrom("FROM:<a@example.com> SIZE", m)),
            "501 5.5.4 Syntax error in parameters");
  EXPECT_EQ(replyOf(parseMailFrom("FROM:<a@example.com> SIZE=1 SIZE=2", m)),
            "501 5.5.4 Syntax error in parameters");
  EXPECT_EQ(replyOf(parseMailFrom("FROM:<a@example.com> SIZE=99999999999999999999", m)),
            "501 5.5.4 Syntax error in parameters");  // past 2^64
  EXPECT_EQ(replyOf(parseMailFrom("FROM:<a@example.com> SIZE=18446744073709551615", m)), "ok");
  EXPECT_EQ(replyOf(parseMailFrom("FROM:<a@example.com> BODY=9BIT", m)),
            "501 5.5.4 Syntax error in parameters");
  EXPECT_EQ(replyOf(parseMailFrom("FROM:<a@example.com> SMTPUTF8=yes", m)),
            "501 5.5.4 Syntax error in parameters");
  EXPECT_EQ(replyOf(parseMailFrom("FROM:<a@example.com> =x", m)),
            "501 5.5.4 Syntax error in parameters");
  EXPECT_EQ(replyOf(parseMailFrom("FROM:<a@example.com> RET=HDRS", m)),
            "555 5.5.4 Unsupported option");
  EXPECT_EQ(replyOf(parseMailFrom("FROM:<a@example.com> X-FOO", m)),
            "555 5.5.4 Unsupported option");
}

TEST(MailFrom, Utf8AddressNeedsTheParameter) {
  MailFromArguments m;
  EXPECT_EQ(replyOf(parseMailFrom("FROM:<j\xc3\xb6rg@example.com>", m)),
            "553 5.6.7 Non-ASCII address requires SMTPUTF8");
  EXPECT_EQ(replyOf(parseMailFrom("FROM:<j\xc3\xb6rg@example.com> SMTPUTF8", m)), "ok");
}

TEST(RcptTo, PathAndNoParameters) {
  RcptToArguments r;
  ASSERT_EQ(replyOf(parseRcptTo("TO:<b@example.org>", false, r)), "ok");
  EXPECT_EQ(r.recipient.local, "b");
  ASSERT_EQ(replyOf(parseRcptTo("to:<postmaster>", false, r)), "ok");
  EXPECT_EQ(replyOf(parseRcptTo("TO:<b@example.org> NOTIFY=NEVER", false, r)),
            "555 5.5.4 Unsupported option");
  EXPECT_EQ(replyOf(parseRcptTo("TO:<>", false, r)), "501 5.1.3 Bad recipient address syntax");
  EXPECT_EQ(replyOf(parseRcptTo("FROM:<b@example.org>", false, r)),
            "501 5.5.4 Syntax: RCPT TO:<address>");
  EXPECT_EQ(replyOf(parseRcptTo("TO:<b\xc3\xbc@example.org>", false, r)),
            "553 5.6.7 Non-ASCII address requires SMTPUTF8");
  EXPECT_EQ(replyOf(parseRcptTo("TO:<b\xc3\xbc@example.org>", true, r)), "ok");
}

TEST(Bdat, SizeAndLast) {
  BdatArguments b;
  ASSERT_EQ(replyOf(parseBdat("1000", b)), "ok");
  EXPECT_EQ(b.size, 1000u);
  EXPECT_FALSE(b.last);
  ASSERT_EQ(replyOf(parseBdat("0 last", b)), "ok");
  EXPECT_EQ(b.size, 0u);
  EXPECT_TRUE(b.last);
  EXPECT_EQ(replyOf(parseBdat("", b)), "501 5.5.4 Syntax: BDAT size [LAST]");
  EXPECT_EQ(replyOf(parseBdat("-1", b)), "501 5.5.4 Syntax: BDAT size [LAST]");
  EXPECT_EQ(replyOf(parseBdat("10 FIRST", b)), "501 5.5.4 Syntax: BDAT size [LAST]");
  EXPECT_EQ(replyOf(parseBdat("10 LAST more", b)), "501 5.5.4 Syntax: BDAT size [LAST]");
  EXPECT_EQ(replyOf(parseBdat("123456789012345678901", b)), "501 5.5.4 Syntax: BDAT size [LAST]");
}

TEST(Auth, MechanismAndInitialResponse) {
  AuthArguments a;
  ASSERT_EQ(replyOf(parseAuth("PLAIN", a)), "ok");
  EXPECT_EQ(a.mechanism, "PLAIN");
  EXPECT_FALSE(a.initialResponse);
  ASSERT_EQ(replyOf(parseAuth("login dXNlcg==", a)), "ok");
  EXPECT_EQ(a.mechanism, "login");
  EXPECT_EQ(a.initialResponse, "dXNlcg==");
  ASSERT_EQ(replyOf(parseAuth("PLAIN =", a)), "ok");
  EXPECT_EQ(a.initialResponse, "=");
  EXPECT_EQ(replyOf(parseAuth("PLAIN a b", a)),
            "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
  EXPECT_EQ(replyOf(parseAuth("PL@IN", a)), "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
  EXPECT_EQ(replyOf(parseAuth("ABCDEFGHIJKLMNOPQRSTU", a)),
            "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
}

}  // namespace
}  // namespace kuberelay::smtp
