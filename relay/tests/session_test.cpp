// The session as transcripts: every script runs whole, byte by byte and in random splits
// against the example policies, with the real password check and a scripted next hop.
#include <gtest/gtest.h>

#include <string>

#include "kuberelay/smtp/replies.h"
#include "kuberelay/smtp/session.h"
#include "transcript.h"

namespace kuberelay::smtp {
namespace {

using testing::Harness;
using testing::send;
using testing::tls;

constexpr const char* kRelay = "examples/003-anonymous-relay-ip-restricted";
constexpr const char* kWebApp = "examples/000-anonymous-web-app";
constexpr const char* kQuickstart = "examples/quickstart";

// 127.0.0.17 on 2525: the anonymous-relay connector (relay right, 1Mi size limit, STARTTLS).
Harness relay() { return Harness(kRelay, "127.0.0.17", 2525); }
// 127.0.0.1 on 2587: web-app-submission (STARTTLS, AUTH only after TLS, requireTLS).
Harness webApp() { return Harness(kWebApp, "127.0.0.1", 2587); }
Harness quickstart() { return Harness(kQuickstart, "127.0.0.1", 2525); }

constexpr const char* kRelayEhlo = R"(S: 250-relay.test Hello [127.0.0.17]
S: 250-PIPELINING
S: 250-SIZE 1048576
S: 250-8BITMIME
S: 250-ENHANCEDSTATUSCODES
S: 250-SMTPUTF8
S: 250-CHUNKING
S: 250 STARTTLS
)";

std::string withEhlo(const char* before, const char* after) {
  return testing::transcript(before) + kRelayEhlo + after;
}

// "\0anonuser@example.com\0AnonUser-Pass-000"
constexpr const char* kAnonPlain = "AGFub251c2VyQGV4YW1wbGUuY29tAEFub25Vc2VyLVBhc3MtMDAw";
constexpr const char* kAnonUser = "YW5vbnVzZXJAZXhhbXBsZS5jb20=";
constexpr const char* kAnonPassword = "QW5vblVzZXItUGFzcy0wMDA=";
// "\0anonuser@example.com\0wrong"
constexpr const char* kWrongPlain = "AGFub251c2VyQGV4YW1wbGUuY29tAHdyb25n";

// ---------------------------------------------------------------------------------------------
// A whole transaction

TEST(Session, TransactionIsForwardedInLine) {
  relay().expect({send("EHLO client.example\r\n"
                       "MAIL FROM:<app@example.com>\r\n"
                       "RCPT TO:<someone@example.org>\r\n"
                       "DATA\r\n"),
                  send("Subject: test\r\n\r\nHello\r\n..dot\r\n.\r\n"), send("QUIT\r\n")},
                 withEhlo(R"(
S: 220 relay.test KubeRelay ESMTP service ready
)",
                          R"(F: MAIL <app@example.com>
S: 250 2.1.0 Sender OK
F: RCPT <someone@example.org>
S: 250 2.1.5 Recipient OK
F: DATA
S: 354 Start mail input; end with <CRLF>.<CRLF>
F: body "Subject: test\r\n\r\nHello\r\n.dot\r\n"
F: END 30
S: 250 2.6.0 <id@next-hop> Queued mail for delivery
S: 221 2.0.0 Service closing transmission channel
X: CLOSE
)"));
}

TEST(Session, PipelinedInOneReadGivesTheSameConversation) {
  // PIPELINING: everything up to DATA in one read, the body in the next.
  Harness h = relay();
  h.render.forwarding = false;
  h.expect({send("EHLO client.example\r\nMAIL FROM:<app@example.com> SIZE=100 BODY=8BITMIME\r\n"
                 "RCPT TO:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"),
            send("body\r\n.\r\nMAIL FROM:<>\r\nRSET\r\nQUIT\r\n")},
           withEhlo(R"(
S: 220 relay.test KubeRelay ESMTP service ready
)",
                    R"(S: 250 2.1.0 Sender OK
S: 250 2.1.5 Recipient OK
S: 250 2.1.5 Recipient OK
S: 354 Start mail input; end with <CRLF>.<CRLF>
S: 250 2.6.0 <id@next-hop> Queued mail for delivery
S: 250 2.1.0 Sender OK
S: 250 2.0.0 Resetting
S: 221 2.0.0 Service closing transmission channel
X: CLOSE
)"));
}

TEST(Session, PolicyOnlyModeAnswersFromThePolicy) {
  Harness h = relay();
  h.config.forwardMode = ForwardMode::PolicyOnly;
  h.expect(
      {send("EHLO c\r\nMAIL FROM:<app@example.com> SIZE=100 SMTPUTF8\r\nRCPT TO:<x@example.org>\r\n"
            "DATA\r\n.\r\nQUIT\r\n")},
      R"(
S: 220 relay.test KubeRelay ESMTP service ready
S: 250-relay.test Hello [127.0.0.17]
S: 250-PIPELINING
S: 250-SIZE 1048576
S: 250-8BITMIME
S: 250-ENHANCEDSTATUSCODES
S: 250-SMTPUTF8
S: 250-CHUNKING
S: 250 STARTTLS
F: MAIL <app@example.com> SIZE=100 SMTPUTF8
S: 250 2.1.0 Sender OK
F: RCPT <x@example.org>
S: 250 2.1.5 Recipient OK
F: DATA
S: 354 Start mail input; end with <CRLF>.<CRLF>
F: body ""
F: END 0
S: 250 2.6.0 Queued mail for delivery
S: 221 2.0.0 Service closing transmission channel
X: CLOSE
)");
}

TEST(Session, EmptyMessageAndDotUnstuffing) {
  Harness h = relay();
  h.expect({send("EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<x@example.org>\r\nDATA\r\n"),
            send(".\r\nMAIL FROM:<>\r\nRCPT TO:<x@example.org>\r\nDATA\r\n"),
            send("..\r\n...x\r\n.y\r\nz.\r\n.\r\n")},
           withEhlo("\nS: 220 relay.test KubeRelay ESMTP service ready\n", R"(F: MAIL <>
S: 250 2.1.0 Sender OK
F: RCPT <x@example.org>
S: 250 2.1.5 Recipient OK
F: DATA
S: 354 Start mail input; end with <CRLF>.<CRLF>
F: body ""
F: END 0
S: 250 2.6.0 <id@next-hop> Queued mail for delivery
F: MAIL <>
S: 250 2.1.0 Sender OK
F: RCPT <x@example.org>
S: 250 2.1.5 Recipient OK
F: DATA
S: 354 Start mail input; end with <CRLF>.<CRLF>
F: body ".\r\n..x\r\ny\r\nz.\r\n"
F: END 15
S: 250 2.6.0 <id@next-hop> Queued mail for delivery
)"));
}

// ---------------------------------------------------------------------------------------------
// Simple verbs, sequence and syntax

TEST(Session, SimpleVerbs) {
  Harness h = relay();
  h.expect({send("NOOP\r\nnoop with text\r\nVRFY someone\r\nHELP\r\nHELP MAIL\r\nRSET\r\n"
                 "HELO client.example\r\nMAIL FROM:<a@example.com>\r\nRSET\r\nQUIT\r\nNOOP\r\n")},
           R"(
S: 220 relay.test KubeRelay ESMTP service ready
S: 250 2.0.0 OK
S: 250 2.0.0 OK
S: 252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery
S: 214 2.0.0 Commands: HELO EHLO STARTTLS AUTH MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT
S: 214 2.0.0 Commands: HELO EHLO STARTTLS AUTH MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT
S: 250 2.0.0 Resetting
S: 250 relay.test Hello [127.0.0.17]
F: MAIL <a@example.com>
S: 250 2.1.0 Sender OK
F: RESET
S: 250 2.0.0 Resetting
S: 221 2.0.0 Service closing transmission channel
X: CLOSE
)");
}

TEST(Session, SequenceErrors) {
  Harness h = relay();
  h.render.tarpits = false;
  h.expect({send("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n"
                 "EHLO c\r\nRCPT TO:<b@example.org>\r\nDATA\r\nMAIL FROM:<a@example.com>\r\n"
                 "DATA\r\nMAIL FROM:<a@example.com>\r\nRSET\r\n")},
           withEhlo(R"(
S: 220 relay.test KubeRelay ESMTP service ready
S: 503 5.5.2 Send hello first
S: 503 5.5.2 Send hello first
S: 503 5.5.2 Send hello first
)",
                    R"(S: 503 5.5.1 Need mail command
S: 503 5.5.1 Need mail command
S: 421 4.7.0 Too many errors on this connection, closing transmission channel
X: CLOSE
)"));
}

TEST(Session, SequenceErrorsWithinTheErrorBudget) {
  Harness h = relay();
  h.render.forwarding = false;
  h.expect({send("EHLO c\r\nRCPT TO:<b@example.org>\r\nDATA\r\nMAIL FROM:<a@example.com>\r\n"
                 "DATA\r\nMAIL FROM:<a@example.com>\r\nRSET\r\n")},
           withEhlo("\nS: 220 relay.test KubeRelay ESMTP service ready\n", R"(T: 5000ms
S: 503 5.5.1 Need mail command
T: 5000ms
S: 503 5.5.1 Need mail command
S: 250 2.1.0 Sender OK
T: 5000ms
S: 503 5.5.1 Need rcpt command
T: 5000ms
S: 503 5.5.1 Sender already specified
S: 250 2.0.0 Resetting
)"));
}

TEST(Session, TooManyProtocolErrorsClose) {
  // limits.maxProtocolErrors defaults to 5: the fifth error is answered, then 421.
  Harness h = relay();
  h.render.tarpits = false;
  h.expect({send("FOO\r\nBAR\r\nEHLO\r\nHELO\r\nMAIL FROM:<a@example.com>\r\nNOOP\r\n")}, R"(
S: 220 relay.test KubeRelay ESMTP service ready
S: 500 5.3.3 Unrecognized command
S: 500 5.3.3 Unrecognized command
S: 501 5.5.4 Syntax: EHLO hostname
S: 501 5.5.4 Syntax: HELO hostname
S: 503 5.5.2 Send hello first
S: 421 4.7.0 Too many errors on this connection, closing transmission channel
X: CLOSE
)");
}

TEST(Session, ArgumentsWhereNoneAreAllowed) {
  Harness h = relay();
  h.render.tarpits = false;
  h.expect({send("EHLO c\r\nRSET now\r\nQUIT now\r\nDATA now\r\nSTARTTLS now\r\nQUIT\r\n")},
           withEhlo("\nS: 220 relay.test KubeRelay ESMTP service ready\n",
                    R"(S: 501 5.5.4 Syntax error: no arguments allowed
S: 501 5.5.4 Syntax error: no arguments allowed
S: 501 5.5.4 Syntax error: no arguments allowed
S: 501 5.5.4 Syntax error: no arguments allowed
S: 221 2.0.0 Service closing transmission channel
X: CLOSE
)"));
}

TEST(Session, MailAndRcptSyntax) {
  Harness h = relay();
  h.render.tarpits = false;
  h.render.forwarding = false;
  h.expect({send("EHLO c\r\nMAIL FROM:<a b@example.com>\r\nMAIL TO:<a@example.com>\r\n"
                 "MAIL FROM:<a@example.com> X-UNKNOWN=1\r\nMAIL FROM:<a@example.com> SIZE=big\r\n"
                 "RSET\r\nQUIT\r\n")},
           withEhlo("\nS: 220 relay.test KubeRelay ESMTP service ready\n",
                    R"(S: 501 5.1.7 Bad sender address syntax
S: 501 5.5.4 Syntax: MAIL FROM:<address>
S: 555 5.5.4 Unsupported option
S: 501 5.5.4 Syntax error in parameters
S: 250 2.0.0 Resetting
S: 221 2.0.0 Service closing transmission channel
X: CLOSE
)"));
  h.expect(
      {send("EHLO c\r\nMAIL FROM:<a@example.com> BODY=BINARYMIME\r\n"
            "MAIL FROM:<j\xc3\xb6rg@example.com>\r\n"
            "MAIL FROM:<@hop.example:a@example.com> AUTH=<>\r\n"
            "RCPT TO:<>\r\nRCPT TO:<b@example.org> NOTIFY=NEVER\r\nRCPT TO:b@example.org\r\n")},
      withEhlo("\nS: 220 relay.test KubeRelay ESMTP service ready\n",
               R"(S: 555 5.5.4 Unsupported option
S: 553 5.6.7 Non-ASCII address requires SMTPUTF8
S: 250 2.1.0 Sender OK
S: 501 5.1.3 Bad recipient address syntax
S: 555 5.5.4 Unsupported option
S: 250 2.1.5 Recipient OK
)"));
}

TEST(Session, Utf8AddressesWithSmtpUtf8) {
  Harness h = relay();
  h.expect({send("EHLO c\r\nMAIL FROM:<j\xc3\xb6rg@example.com> SMTPUTF8\r\n"
                 "RCPT TO:<m\xc3\xbcller@b\xc3\xbc"
                 "cher.example>\r\nRCPT TO:<Postmaster>\r\n"
                 "RCPT TO:<@a.example,@b.example:c@example.org>\r\n")},
           withEhlo("\nS: 220 relay.test KubeRelay ESMTP service ready\n",
                    "F: MAIL <j\xc3\xb6rg@example.com> SMTPUTF8\n"
                    "S: 250 2.1.0 Sender OK\n"
                    "F: RCPT <m\xc3\xbcller@b\xc3\xbc"
                    "cher.example>\n"
                    "S: 250 2.1.5 Recipient OK\n"
                    "F: RCPT <Postmaster>\n"
                    "S: 250 2.1.5 Recipient OK\n"
                    "F: RCPT <c@example.org>\n"
                    "S: 250 2.1.5 Recipient OK\n"));
}

TEST(Session, EhloResetsTheTransactionAndHeloHasNoExtensions) {
  Harness h = relay();
  h.expect(
      {send("EHLO c\r\nMAIL FROM:<a@example.com>\r\nHELO again\r\nRCPT TO:<b@example.org>\r\n")},
      withEhlo("\nS: 220 relay.test KubeRelay ESMTP service ready\n", R"(F: MAIL <a@example.com>
S: 250 2.1.0 Sender OK
F: RESET
S: 250 relay.test Hello [127.0.0.17]
T: 5000ms
S: 503 5.5.1 Need mail command
)"));
}

// ---------------------------------------------------------------------------------------------
// Line framing

TEST(Session, LineTooLongIsAnsweredAndSkippedKeepingSync) {
  Harness h = relay();
  h.render.tarpits = false;
  // 511 octets + CRLF: one over. Inside it, text that must not run as commands.
  std::string longLine = "NOOP " + std::string(200, 'x') + "\nQUIT\r" + std::string(300, 'y');
  longLine.resize(511, 'z');
  h.expect(
      {send("EHLO c\r\n" + longLine + "\r\nNOOP\r\n" + std::string(510, 'n') + "\r\n")},
      withEhlo("\nS: 220 relay.test KubeRelay ESMTP service ready\n", R"(S: 500 5.5.2 Line too long
S: 250 2.0.0 OK
S: 500 5.3.3 Unrecognized command
)"));
}

TEST(Session, BareLineEndingsAndNulInCommands) {
  Harness h = relay();
  h.render.tarpits = false;
  h.expect({send("EHLO c\nMAIL FROM:<a@example.com>\r\nNOOP\rQUIT\r\n"),
            send(std::string("NO\0OP\r\nNOOP\r\n", 13))},
           R"(
S: 220 relay.test KubeRelay ESMTP service ready
S: 500 5.5.2 Syntax error: bare CR, LF or NUL in command
S: 500 5.5.2 Syntax error: bare CR, LF or NUL in command
S: 500 5.5.2 Syntax error: bare CR, LF or NUL in command
S: 250 2.0.0 OK
)");
}

// ---------------------------------------------------------------------------------------------
// STARTTLS

TEST(Session, StartTlsDiscardsPipelinedPlaintextAndForgetsEhlo) {
  Harness h = webApp();
  h.render.tarpits = false;
  h.expect(
      {send(
           "EHLO c\r\nSTARTTLS\r\nMAIL FROM:<injected@example.com>\r\nRCPT TO:<x@example.org>\r\n"),
       tls(), send("MAIL FROM:<a@example.com>\r\nEHLO c\r\nSTARTTLS\r\nQUIT\r\n")},
      R"(
S: 220 relay.test KubeRelay ESMTP service ready
S: 250-relay.test Hello [127.0.0.1]
S: 250-PIPELINING
S: 250-SIZE 37748736
S: 250-8BITMIME
S: 250-ENHANCEDSTATUSCODES
S: 250-SMTPUTF8
S: 250-CHUNKING
S: 250 STARTTLS
S: 220 2.0.0 SMTP server ready
X: STARTTLS
S: 503 5.5.2 Send hello first
S: 250-relay.test Hello [127.0.0.1]
S: 250-PIPELINING
S: 250-SIZE 37748736
S: 250-8BITMIME
S: 250-ENHANCEDSTATUSCODES
S: 250-SMTPUTF8
S: 250-CHUNKING
S: 250 AUTH PLAIN LOGIN
S: 503 5.5.1 TLS already active
S: 221 2.0.0 Service closing transmission channel
X: CLOSE
)");
}

TEST(Session, StartTlsNotOffered) {
  Harness h = quickstart();
  h.expect({send("EHLO c\r\nSTARTTLS\r\nAUTH PLAIN\r\nQUIT\r\n")}, R"(
S: 220 localhost KubeRelay ESMTP service ready
S: 250-relay.test Hello [127.0.0.1]
S: 250-PIPELINING
S: 250-SIZE 37748736
S: 250-8BITMIME
S: 250-ENHANCEDSTATUSCODES
S: 250-SMTPUTF8
S: 250 CHUNKING
S: 454 4.7.0 TLS not available
T: 5000ms
S: 504 5.7.4 Unrecognized authentication type
S: 221 2.0.0 Service closing transmission channel
X: CLOSE
)");
}

TEST(Session, StartTlsBeforeEhloAndInsideATransaction) {
  Harness h = relay();
  h.render.tarpits = false;
  h.render.forwarding = false;
  h.expect({send("STARTTLS\r\nEHLO c\r\nMAIL FROM:<a@example.com>\r\nSTARTTLS\r\nQUIT\r\n")},
           withEhlo(R"(
S: 220 relay.test KubeRelay ESMTP service ready
S: 503 5.5.2 Send hello first
)",
                    R"(S: 250 2.1.0 Sender OK
S: 503 5.5.1 Bad sequence of commands
S: 221 2.0.0 Service closing transmission channel
X: CLOSE
)"));
}

// ---------------------------------------------------------------------------------------------
// AUTH

constexpr const char* kWebAppEhloTls = R"(S: 250-relay.test Hello [127.0.0.1]
S: 250-PIPELINING
S: 250-SIZE 37748736
S: 250-8BITMIME
S: 250-ENHANCEDSTATUSCODES
S: 250-SMTPUTF8
S: 250-CHUNKING
S: 250 AUTH PLAIN LOGIN
)";

TEST(Session, StartTlsWithoutEhloIsRefusedButWorksAfterIt) {
  Harness h = webApp();
  h.render.tarpits = false;
  h.expect({send("STARTTLS\r\nQUIT\r\n")}, R"(
S: 220 relay.test KubeRelay ESMTP service ready
S: 503 5.5.2 Send hello first
S: 221 2.0.0 Service closing transmission channel
X: CLOSE
)");
}

std::vector<testing::Step> ehloTlsThen(std::string commands) {
  return {send("EHLO c\r\nSTARTTLS\r\n"), tls(), send("EHLO c\r\n" + commands)};
}
std::string ehloAfterTls(const char* after) {
  return testing::transcript(R"(
S: 220 relay.test KubeRelay ESMTP service ready
S: 250-relay.test Hello [127.0.0.1]
S: 250-PIPELINING
S: 250-SIZE 37748736
S: 250-8BITMIME
S: 250-ENHANCEDSTATUSCODES
S: 250-SMTPUTF8
S: 250-CHUNKING
S: 250 STARTTLS
S: 220 2.0.0 SMTP server ready
X: STARTTLS
)") + kWebAppEhloTls +
         testing::transcript(after);
}

TEST(Session, AuthPlainWithInitialResponse) {
  webApp().expect(ehloTlsThen(std::string("AUTH PLAIN ") + kAnonPlain +
                              "\r\nMAIL FROM:<anonuser@example.com>\r\nRCPT TO:<x@example.org>\r\n"
                              "AUTH PLAIN " +
                              kAnonPlain + "\r\n"),
                  ehloAfterTls(R"(
A: VERIFY anonuser@example.com
S: 235 2.7.0 Authentication successful
F: MAIL <anonuser@example.com>
S: 250 2.1.0 Sender OK
F: RCPT <x@example.org>
S: 250 2.1.5 Recipient OK
T: 5000ms
S: 503 5.5.1 Bad sequence of commands
)"));
}

TEST(Session, AuthPlainAfterAnEmptyChallenge) {
  webApp().expect(ehloTlsThen(std::string("AUTH PLAIN\r\n") + kAnonPlain + "\r\nAUTH LOGIN\r\n"),
                  ehloAfterTls(R"(
S: 334 
A: VERIFY anonuser@example.com
S: 235 2.7.0 Authentication successful
T: 5000ms
S: 503 5.5.1 Already authenticated
)"));
}

TEST(Session, AuthLogin) {
  webApp().expect(
      ehloTlsThen(std::string("auth login\r\n") + kAnonUser + "\r\n" + kAnonPassword + "\r\n"),
      ehloAfterTls(R"(
S: 334 VXNlcm5hbWU6
S: 334 UGFzc3dvcmQ6
A: VERIFY anonuser@example.com
S: 235 2.7.0 Authentication successful
)"));
  webApp().expect(
      ehloTlsThen(std::string("AUTH LOGIN ") + kAnonUser + "\r\n" + kAnonPassword + "\r\n"),
      ehloAfterTls(R"(
S: 334 UGFzc3dvcmQ6
A: VERIFY anonuser@example.com
S: 235 2.7.0 Authentication successful
)"));
}

TEST(Session, AuthFailuresCancelAndBadBase64) {
  Harness h = webApp();
  h.expect(ehloTlsThen(std::string("AUTH PLAIN ") + kWrongPlain +
                       "\r\nAUTH LOGIN\r\n*\r\nAUTH PLAIN\r\nnot base64!\r\n"
                       "AUTH PLAIN YW5vbnVzZXJAZXhhbXBsZS5jb20AQW5vblVzZXItUGFzcy0wMDA=\r\n"
                       "MAIL FROM:<anonuser@example.com>\r\n"),
           ehloAfterTls(R"(
A: VERIFY anonuser@example.com
T: 5000ms
S: 535 5.7.3 Authentication unsuccessful
S: 334 VXNlcm5hbWU6
T: 5000ms
S: 501 5.7.0 Authentication cancelled
S: 334 
T: 5000ms
S: 501 5.5.2 Cannot decode response
T: 5000ms
S: 501 5.5.2 Cannot decode response
T: 5000ms
S: 530 5.7.1 Client was not authenticated
)"));
}

TEST(Session, AuthzidMustBeEmptyOrTheUser) {
  Harness h = webApp();
  h.render.tarpits = false;
  // "alice@example.com\0anonuser@example.com\0..." then the same with authzid = authcid.
  h.expect(
      ehloTlsThen(
          "AUTH PLAIN "
          "YWxpY2VAZXhhbXBsZS5jb20AYW5vbnVzZXJAZXhhbXBsZS5jb20AQW5vblVzZXItUGFzcy0wMDA=\r\n"
          "AUTH PLAIN "
          "YW5vbnVzZXJAZXhhbXBsZS5jb20AYW5vbnVzZXJAZXhhbXBsZS5jb20AQW5vblVzZXItUGFzcy0wMDA=\r\n"),
      ehloAfterTls(R"(
S: 535 5.7.3 Authentication unsuccessful
A: VERIFY anonuser@example.com
S: 235 2.7.0 Authentication successful
)"));
}

TEST(Session, LogonFailuresLockTheConnectionOut) {
  // limits.maxLogonFailures defaults to 3; authTarpitInterval to 5s.
  Harness h = webApp();
  h.expect(ehloTlsThen(std::string("AUTH PLAIN ") + kWrongPlain + "\r\nAUTH PLAIN " + kWrongPlain +
                       "\r\nAUTH PLAIN " + kWrongPlain + "\r\nAUTH PLAIN " + kAnonPlain + "\r\n"),
           ehloAfterTls(R"(
A: VERIFY anonuser@example.com
T: 5000ms
S: 535 5.7.3 Authentication unsuccessful
A: VERIFY anonuser@example.com
T: 5000ms
S: 535 5.7.3 Authentication unsuccessful
A: VERIFY anonuser@example.com
T: 5000ms
S: 535 5.7.3 Authentication unsuccessful
S: 421 4.7.0 Too many failed logon attempts
X: CLOSE
)"));
}

TEST(Session, AuthRefusedByPolicyBeforeTls) {
  Harness h = webApp();
  h.render.tarpits = false;
  h.expect({send(std::string("AUTH PLAIN ") + kAnonPlain + "\r\nEHLO c\r\nAUTH PLAIN " +
                 kAnonPlain + "\r\nAUTH CRAM-MD5\r\nAUTH\r\nMAIL FROM:<anonuser@example.com>\r\n")},
           R"(
S: 220 relay.test KubeRelay ESMTP service ready
S: 503 5.5.2 Send hello first
S: 250-relay.test Hello [127.0.0.1]
S: 250-PIPELINING
S: 250-SIZE 37748736
S: 250-8BITMIME
S: 250-ENHANCEDSTATUSCODES
S: 250-SMTPUTF8
S: 250-CHUNKING
S: 250 STARTTLS
S: 538 5.7.11 Encryption required for requested authentication mechanism
S: 504 5.7.4 Unrecognized authentication type
S: 501 5.5.4 Syntax: AUTH mechanism [initial-response]
S: 530 5.7.0 Must issue a STARTTLS command first
)");
}

TEST(Session, SaslResponseLinesMayBeLongerThanCommands) {
  Harness h = webApp();
  h.render.tarpits = false;
  const std::string longResponse(1000, 'A');  // valid base64 of 750 zero-ish octets
  h.expect(ehloTlsThen("AUTH PLAIN\r\n" + longResponse + "\r\nAUTH LOGIN\r\nab\ncd\r\nNOOP\r\n"),
           ehloAfterTls(R"(
S: 334 
S: 501 5.5.2 Cannot decode response
S: 334 VXNlcm5hbWU6
S: 500 5.5.2 Syntax error: bare CR, LF or NUL in command
S: 250 2.0.0 OK
)"));
}

// ---------------------------------------------------------------------------------------------
// Content: SMTP smuggling, limits

std::vector<testing::Step> messageOnRelay(std::string content) {
  return {send("EHLO c\r\nMAIL FROM:<app@example.com>\r\nRCPT TO:<x@example.org>\r\nDATA\r\n"),
          send(std::move(content)), send("QUIT\r\n")};
}

std::string relayTranscript(const char* end) {
  return withEhlo("\nS: 220 relay.test KubeRelay ESMTP service ready\n",
                  "S: 250 2.1.0 Sender OK\n"
                  "S: 250 2.1.5 Recipient OK\n"
                  "S: 354 Start mail input; end with <CRLF>.<CRLF>\n") +
         testing::transcript(end);
}

TEST(Session, SmugglingSequencesDoNotEndDataAndTheMessageIsRefused) {
  const char* sequences[] = {"\n.\n", "\n.\r\n", "\r.\r", "\r\n.\n", "\r.\r\n", "\r\n.\r"};
  for (const char* seq : sequences) {
    SCOPED_TRACE(::testing::PrintToString(seq));
    Harness h = relay();
    h.render.forwarding = false;
    // What follows each sequence would be a second, unauthorised message if a next hop ended
    // the data there. It stays content, and the whole message is refused.
    h.expect(messageOnRelay(std::string("Subject: one\r\n\r\nbody") + seq +
                            "MAIL FROM:<spoofed@example.com>\r\nRCPT TO:<victim@example.org>\r\n"
                            "DATA\r\nSubject: smuggled\r\n\r\nhi\r\n.\r\n"),
             relayTranscript(R"(
T: 5000ms
S: 550 5.6.11 Bare CR or LF in message body (SMTP smuggling protection)
S: 221 2.0.0 Service closing transmission channel
X: CLOSE
)"));
  }
}

TEST(Session, RefusedContentResetsTheNextHop) {
  Harness h = relay();
  h.render.tarpits = false;
  h.expect(
      messageOnRelay("a\r\nb\nc\r\n.\r\n"),
      withEhlo("\nS: 220 relay.test KubeRelay ESMTP service ready\n", R"(F: MAIL <app@example.com>
S: 250 2.1.0 Sender OK
F: RCPT <x@example.org>
S: 250 2.1.5 Recipient OK
F: DATA
S: 354 Start mail input; end with <CRLF>.<CRLF>
F: RESET
S: 550 5.6.11 Bare CR or LF in message body (SMTP smuggling protection)
S: 221 2.0.0 Service closing transmission channel
X: CLOSE
)"));
}

TEST(Session, NormaliseOptionForwardsBareLineEndingsAsCrlf) {
  Harness h = relay();
  h.config.normalizeBareLineEndings = true;
  h.expect(
      messageOnRelay("a\nb\rc\n.\nd\r\n.\r\n"),
      withEhlo("\nS: 220 relay.test KubeRelay ESMTP service ready\n", R"(F: MAIL <app@example.com>
S: 250 2.1.0 Sender OK
F: RCPT <x@example.org>
S: 250 2.1.5 Recipient OK
F: DATA
S: 354 Start mail input; end with <CRLF>.<CRLF>
F: body "a\r\nb\r\nc\r\n.\r\nd\r\n"
F: END 15
S: 250 2.6.0 <id@next-hop> Queued mail for delivery
S: 221 2.0.0 Service closing transmission channel
X: CLOSE
)"));
}

TEST(Session, LongTextLineIsRefusedAtTheEndKeepingSync) {
  Harness h = relay();
  h.render.forwarding = false;
  h.expect(messageOnRelay("Subject: x\r\n\r\n" + std::string(999, 'x') + "\r\nQUIT\r\n.\r\n"),
           relayTranscript(R"(
T: 5000ms
S: 550 5.5.2 Line too long in message body
S: 221 2.0.0 Service closing transmission channel
X: CLOSE
)"));
}

TEST(Session, HopCountExceeded) {
  // limits.maxHopCount defaults to 30.
  std::string headers;
  for (int i = 0; i < 31; ++i) headers += "Received: from hop" + std::to_string(i) + "\r\n";
  Harness h = relay();
  h.render.forwarding = false;
  h.byteRuns = false;
  h.expect(messageOnRelay(headers + "\r\nbody\r\n.\r\n"), relayTranscript(R"(
T: 5000ms
S: 554 5.4.6 Hop count exceeded - possible mail loop
S: 221 2.0.0 Service closing transmission channel
X: CLOSE
)"));
}

TEST(Session, HeaderSizeExceeded) {
  // limits.maxHeaderSize defaults to 256Ki; the message itself stays under the 1Mi limit.
  std::string headers;
  while (headers.size() <= 256 * 1024) headers += "X-Filler: " + std::string(500, 'f') + "\r\n";
  Harness h = relay();
  h.render.forwarding = false;
  h.byteRuns = false;
  h.randomRuns = 2;
  h.expect(messageOnRelay(headers + "\r\nbody\r\n.\r\n"), relayTranscript(R"(
T: 5000ms
S: 552 5.3.4 Header size exceeds fixed maximum
S: 221 2.0.0 Service closing transmission channel
X: CLOSE
)"));
}

std::string bodyOfSize(size_t octets) {
  std::string body = "Subject: big\r\n\r\n";
  const std::string line = std::string(76, 'b') + "\r\n";
  while (body.size() + line.size() <= octets) body += line;
  body += std::string(octets - body.size() - 2, 'c') + "\r\n";
  return body;
}

TEST(Session, MessageSizeLimitAtTheEndOfData) {
  Harness h = relay();
  h.render.forwarding = false;
  h.byteRuns = false;
  h.randomRuns = 1;
  // 1Mi exactly passes, one octet more does not; the rest of the data is read and discarded.
  h.expect(messageOnRelay(bodyOfSize(1024 * 1024) + ".\r\n"), relayTranscript(R"(
S: 250 2.6.0 <id@next-hop> Queued mail for delivery
S: 221 2.0.0 Service closing transmission channel
X: CLOSE
)"));
  h.expect(messageOnRelay(bodyOfSize(1024 * 1024 + 1) + ".\r\n"), relayTranscript(R"(
T: 5000ms
S: 552 5.3.4 Message size exceeds fixed maximum message size
S: 221 2.0.0 Service closing transmission channel
X: CLOSE
)"));
}

TEST(Session, DeclaredSizeOverTheLimitIsRefusedAtMail) {
  Harness h = relay();
  h.render.forwarding = false;
  h.expect({send("EHLO c\r\nMAIL FROM:<app@example.com> SIZE=2097152\r\nMAIL "
                 "FROM:<app@example.com> SIZE=1048576\r\n")},
           withEhlo("\nS: 220 relay.test KubeRelay ESMTP service ready\n", R"(T: 5000ms
S: 552 5.3.4 Message size exceeds fixed maximum message size
S: 250 2.1.0 Sender OK
)"));
}

// ---------------------------------------------------------------------------------------------
// BDAT (RFC 3030)

TEST(Session, BdatChunksWithLast) {
  Harness h = relay();
  h.expect(
      {send("EHLO c\r\nMAIL FROM:<app@example.com>\r\nRCPT TO:<x@example.org>\r\n"
            "BDAT 8\r\nSubject:BDAT 10 LAST\r\n x\r\n.\r\nx\r\nQUIT\r\n")},
      withEhlo("\nS: 220 relay.test KubeRelay ESMTP service ready\n", R"(F: MAIL <app@example.com>
S: 250 2.1.0 Sender OK
F: RCPT <x@example.org>
S: 250 2.1.5 Recipient OK
F: BDAT
S: 250 2.0.0 8 octets received
F: body "Subject: x\r\n.\r\nx\r\n"
F: END 18
S: 250 2.6.0 <id@next-hop> Queued mail for delivery
S: 221 2.0.0 Service closing transmission channel
X: CLOSE
)"));
}

TEST(Session, BdatZeroLastEndsTheMessageAndDataCannotFollow) {
  Harness h = relay();
  h.render.tarpits = false;
  h.expect(
      {send("EHLO c\r\nMAIL FROM:<app@example.com>\r\nRCPT TO:<x@example.org>\r\n"
            "BDAT 6\r\nhello\nDATA\r\nRCPT TO:<y@example.org>\r\nBDAT 0 LAST\r\n")},
      withEhlo("\nS: 220 relay.test KubeRelay ESMTP service ready\n", R"(F: MAIL <app@example.com>
S: 250 2.1.0 Sender OK
F: RCPT <x@example.org>
S: 250 2.1.5 Recipient OK
F: BDAT
S: 250 2.0.0 6 octets received
S: 503 5.5.1 Bad sequence of commands
S: 503 5.5.1 Bad sequence of commands
F: RESET
S: 550 5.6.11 Bare CR or LF in message body (SMTP smuggling protection)
)"));
}

TEST(Session, BdatSizesThatLie) {
  Harness h = relay();
  h.render.tarpits = false;
  h.render.forwarding = false;
  // The client says 5 but sends 10: the extra octets are read as a command line.
  h.expect({send("EHLO c\r\nMAIL FROM:<app@example.com>\r\nRCPT TO:<x@example.org>\r\n"
                 "BDAT 5 LAST\r\n0123456789\r\nQUIT\r\n")},
           withEhlo("\nS: 220 relay.test KubeRelay ESMTP service ready\n", R"(S: 250 2.1.0 Sender OK
S: 250 2.1.5 Recipient OK
S: 250 2.6.0 <id@next-hop> Queued mail for delivery
S: 500 5.3.3 Unrecognized command
S: 221 2.0.0 Service closing transmission channel
X: CLOSE
)"));
  // The client says 22 but sends 10 then commands: the commands are content.
  h.expect({send("EHLO c\r\nMAIL FROM:<app@example.com>\r\nRCPT TO:<x@example.org>\r\n"
                 "BDAT 22 LAST\r\n0123456789QUIT\r\nNOOP\r\nNOOP\r\n")},
           withEhlo("\nS: 220 relay.test KubeRelay ESMTP service ready\n", R"(S: 250 2.1.0 Sender OK
S: 250 2.1.5 Recipient OK
S: 250 2.6.0 <id@next-hop> Queued mail for delivery
S: 250 2.0.0 OK
)"));
}

TEST(Session, BdatOutOfSequenceSkipsItsChunk) {
  Harness h = relay();
  h.render.tarpits = false;
  h.expect({send("EHLO c\r\nBDAT 12\r\nQUIT\r\nQUIT\r\nMAIL FROM:<app@example.com>\r\nBDAT 6 "
                 "LAST\r\nNOOP\r\nNOOP\r\n")},
           withEhlo("\nS: 220 relay.test KubeRelay ESMTP service ready\n",
                    R"(S: 503 5.5.1 Need mail command
F: MAIL <app@example.com>
S: 250 2.1.0 Sender OK
S: 503 5.5.1 Need rcpt command
S: 250 2.0.0 OK
)"));
}

TEST(Session, BdatWithoutAUsableSizeLosesSyncAndCloses) {
  Harness h = relay();
  h.render.tarpits = false;
  h.expect({send("EHLO c\r\nBDAT many\r\nNOOP\r\n")},
           withEhlo("\nS: 220 relay.test KubeRelay ESMTP service ready\n",
                    R"(S: 501 5.5.4 Syntax: BDAT size [LAST]
S: 421 4.7.0 Lost synchronization with client, closing transmission channel
X: CLOSE
)"));
}

TEST(Session, BdatBinaryMimeIsNotOffered) {
  Harness h = relay();
  h.render.tarpits = false;
  h.expect({send("EHLO c\r\nMAIL FROM:<app@example.com> BODY=BINARYMIME\r\n")},
           withEhlo("\nS: 220 relay.test KubeRelay ESMTP service ready\n",
                    "S: 555 5.5.4 Unsupported option\n"));
}

// ---------------------------------------------------------------------------------------------
// The next hop

TEST(Session, NextHopRepliesAreRelayed) {
  Harness h = relay();
  h.render.tarpits = false;
  h.nextHop.rcptFor = [](std::string_view rcpt) -> std::optional<policy::Reply> {
    if (rcpt == "unknown@example.org") return policy::Reply{550, "5.1.1", "User unknown"};
    return std::nullopt;
  };
  h.expect(
      {send("EHLO c\r\nMAIL FROM:<app@example.com>\r\nRCPT TO:<unknown@example.org>\r\n"
            "DATA\r\nRCPT TO:<known@example.org>\r\nDATA\r\n"),
       send("x\r\n.\r\n")},
      withEhlo("\nS: 220 relay.test KubeRelay ESMTP service ready\n", R"(F: MAIL <app@example.com>
S: 250 2.1.0 Sender OK
F: RCPT <unknown@example.org>
S: 550 5.1.1 User unknown
S: 503 5.5.1 Need rcpt command
F: RCPT <known@example.org>
S: 250 2.1.5 Recipient OK
F: DATA
S: 354 Start mail input; end with <CRLF>.<CRLF>
F: body "x\r\n"
F: END 3
S: 250 2.6.0 <id@next-hop> Queued mail for delivery
)"));
}

TEST(Session, FailedNextHopIsATemporaryFailure) {
  Harness h = relay();
  h.nextHop.end = policy::Reply{0, "", "connection reset"};
  h.expect(
      messageOnRelay("x\r\n.\r\n"),
      withEhlo("\nS: 220 relay.test KubeRelay ESMTP service ready\n", R"(F: MAIL <app@example.com>
S: 250 2.1.0 Sender OK
F: RCPT <x@example.org>
S: 250 2.1.5 Recipient OK
F: DATA
S: 354 Start mail input; end with <CRLF>.<CRLF>
F: body "x\r\n"
F: END 3
S: 451 4.4.0 Next hop unavailable, try again later
S: 221 2.0.0 Service closing transmission channel
X: CLOSE
)"));
}

TEST(Session, NextHopRefusingDataResetsTheTransaction) {
  Harness h = relay();
  h.render.tarpits = false;
  h.nextHop.data = policy::Reply{554, "5.5.1", "No valid recipients"};
  h.expect(
      {send("EHLO c\r\nMAIL FROM:<app@example.com>\r\nRCPT TO:<x@example.org>\r\nDATA\r\n"),
       send(
           "MAIL FROM:<app@example.com>\r\nRCPT TO:<x@example.org>\r\nBDAT 3 LAST\r\nabcNOOP\r\n")},
      withEhlo("\nS: 220 relay.test KubeRelay ESMTP service ready\n", R"(F: MAIL <app@example.com>
S: 250 2.1.0 Sender OK
F: RCPT <x@example.org>
S: 250 2.1.5 Recipient OK
F: DATA
F: RESET
S: 554 5.5.1 No valid recipients
F: MAIL <app@example.com>
S: 250 2.1.0 Sender OK
F: RCPT <x@example.org>
S: 250 2.1.5 Recipient OK
F: BDAT
F: RESET
S: 554 5.5.1 No valid recipients
S: 250 2.0.0 OK
)"));
}

TEST(Session, NextHopControlCharactersCannotAddReplyLines) {
  Harness h = relay();
  h.nextHop.mail = policy::Reply{250, "2.1.0", "OK\r\n250 forged"};
  h.render.forwarding = false;
  h.expect({send("EHLO c\r\nMAIL FROM:<app@example.com>\r\n")},
           withEhlo("\nS: 220 relay.test KubeRelay ESMTP service ready\n",
                    "S: 250 2.1.0 OK  250 forged\n"));
}

// ---------------------------------------------------------------------------------------------
// Policy decisions passed through

TEST(Session, RecipientLimitFromThePolicy) {
  // maxRecipientsPerMessage defaults to 200.
  std::string rcpts;
  for (int i = 0; i < 201; ++i) rcpts += "RCPT TO:<r" + std::to_string(i) + "@example.org>\r\n";
  Harness h = relay();
  h.render.forwarding = false;
  h.byteRuns = false;
  h.randomRuns = 2;
  std::string expected;
  for (int i = 0; i < 200; ++i) expected += "S: 250 2.1.5 Recipient OK\n";
  h.expect(
      {send("EHLO c\r\nMAIL FROM:<app@example.com>\r\n" + rcpts)},
      withEhlo(
          "\nS: 220 relay.test KubeRelay ESMTP service ready\n",
          ("S: 250 2.1.0 Sender OK\n" + expected + "S: 452 4.5.3 Too many recipients\n").c_str()));
}

TEST(Session, RelayDeniedOutsideTheRange) {
  Harness h(kRelay, "127.0.0.1", 2525);  // internet-default: no relay right
  h.render.forwarding = false;
  h.expect({send("EHLO c\r\nMAIL FROM:<x@customer.test>\r\nRCPT TO:<someone@example.org>\r\n"
                 "RCPT TO:<user@example.com>\r\n")},
           R"(
S: 220 relay.test KubeRelay ESMTP service ready
S: 250-relay.test Hello [127.0.0.1]
S: 250-PIPELINING
S: 250-SIZE 37748736
S: 250-8BITMIME
S: 250-ENHANCEDSTATUSCODES
S: 250-SMTPUTF8
S: 250-CHUNKING
S: 250 STARTTLS
S: 250 2.1.0 Sender OK
T: 5000ms
S: 550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain
S: 250 2.1.5 Recipient OK
)");
}

TEST(Session, ConnectRefusedWhenNoConnectorServesTheClient) {
  Harness h(kWebApp, "127.0.0.1", 2525);
  h.expect({send("EHLO c\r\n")}, R"(
S: 554 5.7.1 No receive connector accepts this client
X: CLOSE
)");
}

TEST(Session, EventsReportEveryDecision) {
  Harness h = webApp();
  h.render.events = true;
  h.render.tarpits = false;
  h.render.forwarding = false;
  h.expect(
      {send("EHLO c\r\nMAIL FROM:<a@example.com>\r\nFOO\r\nSTARTTLS\r\n"), tls(),
       send(std::string("EHLO c\r\nAUTH PLAIN ") + kWrongPlain + "\r\nAUTH PLAIN " + kAnonPlain +
            "\r\nMAIL FROM:<anonuser@example.com>\r\nRCPT TO:<x@example.org>\r\nDATA\r\n"),
       send("a\nb\r\n.\r\n")},
      R"(
E: connect allow ok 220
S: 220 relay.test KubeRelay ESMTP service ready
E: ehlo allow ok 250
S: 250-relay.test Hello [127.0.0.1]
S: 250-PIPELINING
S: 250-SIZE 37748736
S: 250-8BITMIME
S: 250-ENHANCEDSTATUSCODES
S: 250-SMTPUTF8
S: 250-CHUNKING
S: 250 STARTTLS
E: mail deny tls_required 530
S: 530 5.7.0 Must issue a STARTTLS command first
E: protocol deny unknown_command 500
S: 500 5.3.3 Unrecognized command
E: starttls allow ok 220
S: 220 2.0.0 SMTP server ready
X: STARTTLS
E: ehlo allow ok 250
S: 250-relay.test Hello [127.0.0.1]
S: 250-PIPELINING
S: 250-SIZE 37748736
S: 250-8BITMIME
S: 250-ENHANCEDSTATUSCODES
S: 250-SMTPUTF8
S: 250-CHUNKING
S: 250 AUTH PLAIN LOGIN
A: VERIFY anonuser@example.com
E: auth deny bad_credentials 535
S: 535 5.7.3 Authentication unsuccessful
A: VERIFY anonuser@example.com
E: auth allow ok 235
S: 235 2.7.0 Authentication successful
E: mail allow own_address 250
E: mail allow next_hop_accepted 250
S: 250 2.1.0 Sender OK
E: rcpt allow relay_right 250
E: rcpt allow next_hop_accepted 250
S: 250 2.1.5 Recipient OK
S: 354 Start mail input; end with <CRLF>.<CRLF>
E: data deny bare_line_ending 550
S: 550 5.6.11 Bare CR or LF in message body (SMTP smuggling protection)
)");
}

// ---------------------------------------------------------------------------------------------
// The session's own guarantees, checked directly

struct Direct {
  Direct(const char* folder, const char* client, uint16_t port, SessionConfig config = {})
      : session(policy::SessionPolicy::connect(testing::exampleSnapshot(folder),
                                               {*policy::IpAddress::parse("0.0.0.0"), port,
                                                *policy::IpAddress::parse(client)}),
                std::move(config)) {
    session.start(out);
    out.clear();
  }
  std::string replies() const { return std::string(out.replyText()); }
  Session session;
  Output out;
};

TEST(SessionDirect, StartTlsDropsWhatFollowsInTheSameRead) {
  Direct d(kWebApp, "127.0.0.1", 2587);
  d.session.receive("EHLO c\r\n", d.out);
  d.out.clear();
  d.session.receive("STARTTLS\r\nMAIL FROM:<x@example.com>\r\nRCPT TO", d.out);
  EXPECT_EQ(d.replies(), "220 2.0.0 SMTP server ready\r\n");
  ASSERT_EQ(d.out.actions().size(), 3u);  // event, reply, StartTls
  EXPECT_TRUE(std::holds_alternative<action::StartTls>(d.out.actions().back()));
  EXPECT_EQ(d.session.waiting(), Waiting::TlsHandshake);
  EXPECT_FALSE(d.session.wantsInput());
  d.out.clear();
  d.session.receive(":<y@example.org>\r\nNOOP\r\n", d.out);  // a confused caller: still dropped
  EXPECT_TRUE(d.out.empty());
  d.session.onTlsEstablished(d.out);
  EXPECT_TRUE(d.session.policy().tlsActive());
  d.session.receive("NOOP\r\n", d.out);
  EXPECT_EQ(d.replies(), "250 2.0.0 OK\r\n");
}

TEST(SessionDirect, InputWhileWaitingIsKeptInOrder) {
  Direct d(kRelay, "127.0.0.17", 2525);
  d.session.receive("EHLO c\r\nMAIL FROM:<a@example.com>\r\n", d.out);
  EXPECT_EQ(d.session.waiting(), Waiting::NextHop);
  d.out.clear();
  d.session.receive("RCPT TO:<b@example.org>\r\nNO", d.out);  // pipelined anyway
  d.session.receive("OP\r\n", d.out);
  EXPECT_TRUE(d.out.empty());
  d.session.onForwardReply(policy::Reply{250, "2.1.0", "ok"}, d.out);
  EXPECT_EQ(d.replies(), "250 2.1.0 ok\r\n");
  EXPECT_EQ(d.session.waiting(), Waiting::NextHop);  // the RCPT now waits
  d.out.clear();
  d.session.onForwardReply(policy::Reply{250, "2.1.5", "ok"}, d.out);
  EXPECT_EQ(d.replies(), "250 2.1.5 ok\r\n250 2.0.0 OK\r\n");
  EXPECT_TRUE(d.session.wantsInput());
}

TEST(SessionDirect, TooMuchInputWhileWaitingCloses) {
  SessionConfig config;
  config.maxPendingInput = 100;
  Direct d(kRelay, "127.0.0.17", 2525, config);
  d.session.receive("EHLO c\r\nMAIL FROM:<a@example.com>\r\n", d.out);
  d.out.clear();
  d.session.receive(std::string(60, 'x'), d.out);
  EXPECT_TRUE(d.out.empty());
  d.session.receive(std::string(60, 'x'), d.out);
  EXPECT_EQ(d.replies(), "421 4.7.0 Too much pipelined input, closing transmission channel\r\n");
  EXPECT_TRUE(d.session.closed());
}

SessionConfig policyOnly() {
  SessionConfig config;
  config.forwardMode = ForwardMode::PolicyOnly;
  return config;
}

TEST(SessionDirect, BodyChunksAreViewsIntoTheCallersBuffer) {
  Direct d(kRelay, "127.0.0.17", 2525, policyOnly());
  d.session.receive("EHLO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n",
                    d.out);
  d.out.clear();
  const std::string content = "line one\r\nline two\r\n.\r\n";
  d.session.receive(content, d.out);
  int chunks = 0;
  for (const Action& a : d.out.actions()) {
    if (auto* c = std::get_if<action::BodyChunk>(&a)) {
      ++chunks;
      EXPECT_EQ(c->bytes.data(), content.data());
      EXPECT_EQ(c->bytes, "line one\r\nline two\r\n");
    }
  }
  EXPECT_EQ(chunks, 1);
}

TEST(SessionDirect, CallbacksOutOfTurnAreIgnored) {
  Direct d(kRelay, "127.0.0.17", 2525);
  d.session.onForwardReply(policy::Reply{250, "2.0.0", "x"}, d.out);
  d.session.onCredentials(nullptr, d.out);
  d.session.onTlsEstablished(d.out);
  EXPECT_TRUE(d.out.empty());
  EXPECT_FALSE(d.session.policy().tlsActive());
}

TEST(SessionDirect, NoPolicyFailsClosedTemporarily) {
  Session s(policy::SessionPolicy::noPolicy(), SessionConfig{});
  Output out;
  s.start(out);
  EXPECT_EQ(out.replyText(), "421 4.3.2 System not accepting network messages\r\n");
  EXPECT_TRUE(s.closed());
}

}  // namespace
}  // namespace kuberelay::smtp

namespace kuberelay::smtp {
namespace {

std::vector<std::string> clientLines(const Output& out) {
  std::vector<std::string> lines;
  for (const auto& a : out.actions()) {
    if (auto* l = std::get_if<action::ClientLine>(&a)) lines.emplace_back(l->text);
  }
  return lines;
}

// The protocol log sees commands, never secrets and never message content.
TEST(SessionProtocolLog, MasksAuthAndLeavesOutContent) {
  SessionConfig config;
  config.protocolLog = true;
  config.forwardMode = ForwardMode::PolicyOnly;
  Direct d("examples/004-ip-restriction-flag", "127.0.0.40", 2525, config);
  d.session.receive("EHLO c\r\nSTARTTLS\r\n", d.out);
  EXPECT_EQ(clientLines(d.out), (std::vector<std::string>{"EHLO c", "STARTTLS"}));
  d.out.clear();
  d.session.onTlsEstablished(d.out);
  d.session.receive("EHLO c\r\nAUTH PLAIN AGh1YjIAc2VjcmV0\r\n", d.out);
  std::vector<std::string> lines = clientLines(d.out);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1], "AUTH PLAIN ****");
  d.out.clear();
  d.session.onCredentials(nullptr, d.out);
  d.out.clear();
  d.session.receive("AUTH LOGIN\r\nZGF2ZQ==\r\nc2VjcmV0\r\n", d.out);
  d.out.clear();
  d.session.onCredentials(nullptr, d.out);
  d.out.clear();
  d.session.receive(
      "MAIL FROM:<a@customer.test>\r\nRCPT TO:<dave@example.com>\r\nDATA\r\n"
      "Subject: secret content\r\n\r\nbody\r\n.\r\nQUIT\r\n",
      d.out);
  for (const auto& l : clientLines(d.out)) {
    EXPECT_EQ(l.find("secret"), std::string::npos) << l;
    EXPECT_EQ(l.find("body"), std::string::npos) << l;
  }
  EXPECT_EQ(clientLines(d.out).back(), "QUIT");
}

TEST(SessionProtocolLog, OffByDefault) {
  Direct d("examples/004-ip-restriction-flag", "127.0.0.40", 2525);
  d.session.receive("EHLO c\r\nNOOP\r\n", d.out);
  EXPECT_TRUE(clientLines(d.out).empty());
}

}  // namespace
}  // namespace kuberelay::smtp
