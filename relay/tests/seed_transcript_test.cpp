// The seed scenarios (examples/*/README.md) as whole SMTP conversations: each case is a
// session against its example policy that ends with the reply the seed expects.
#include <gtest/gtest.h>

#include <string>

#include "kuberelay/smtp/base64.h"
#include "transcript.h"

namespace kuberelay::smtp {
namespace {

using testing::Harness;
using testing::send;
using testing::Split;
using testing::tls;

struct SeedSession {
  const char* name;
  const char* client;
  uint16_t port;
  bool tls;
  const char* user;  // nullptr: anonymous
  const char* password;
  const char* mail;       // nullptr: stop before MAIL FROM
  uint64_t declaredSize;  // SIZE= on MAIL FROM, 0 = none
  const char* rcpt;       // nullptr: stop before RCPT TO
  size_t messageBytes;    // 0: stop before DATA
  const char* lastReply;  // the last line the server sends
};

std::string message(size_t octets) {
  std::string body = "Subject: seed\r\n\r\n";
  const std::string line = std::string(76, 'm') + "\r\n";
  while (body.size() + line.size() <= octets) body += line;
  if (octets > body.size() + 2) body += std::string(octets - body.size() - 2, 'm') + "\r\n";
  return body;
}

std::vector<testing::Step> script(const SeedSession& c) {
  std::vector<testing::Step> steps;
  std::string commands = "EHLO client.example\r\n";
  if (c.tls) {
    steps.push_back(send(commands + "STARTTLS\r\n"));
    steps.push_back(tls());
  }
  if (c.user) {
    commands +=
        "AUTH PLAIN " + encodeBase64(std::string(1, '\0') + c.user + '\0' + c.password) + "\r\n";
  }
  if (c.mail) {
    commands += std::string("MAIL FROM:") + c.mail;
    if (c.declaredSize) commands += " SIZE=" + std::to_string(c.declaredSize);
    commands += "\r\n";
  }
  if (c.rcpt) commands += std::string("RCPT TO:") + c.rcpt + "\r\n";
  if (c.messageBytes) commands += "DATA\r\n";
  steps.push_back(send(commands));
  if (c.messageBytes) steps.push_back(send(message(c.messageBytes) + ".\r\n"));
  return steps;
}

std::string lastReply(const std::string& transcript) {
  const std::string t = "\n" + transcript;
  size_t start = t.rfind("\nS: ");
  if (start == std::string::npos) return transcript;
  start += 4;
  return t.substr(start, t.find('\n', start) - start);
}

void runSeed(const char* folder, const std::vector<SeedSession>& cases) {
  for (const SeedSession& c : cases) {
    SCOPED_TRACE(std::string(folder) + ": " + c.name);
    Harness h(folder, c.client, c.port);
    h.config.forwardMode = ForwardMode::PolicyOnly;
    h.render.forwarding = false;
    const auto steps = script(c);
    const std::string whole = h.run(steps, Split::Whole);
    EXPECT_EQ(lastReply(whole), c.lastReply) << whole;
    EXPECT_EQ(h.run(steps, Split::Random, 1), whole);
  }
}

constexpr const char* kExternal = "<someone@customer.test>";
constexpr size_t k2MiB = 2 * 1024 * 1024;

TEST(SeedSessions, Seed000AnonymousWebApp) {
  const char* anon = "anonuser@example.com";
  const char* pw = "AnonUser-Pass-000";
  runSeed(
      "examples/000-anonymous-web-app",
      {
          {"service account sends as itself to an external recipient", "127.0.0.1", 2587, true,
           anon, pw, "<anonuser@example.com>", 0, kExternal, 4096,
           "250 2.6.0 Queued mail for delivery"},
          {"service account mails a local recipient", "127.0.0.1", 2587, true, anon, pw,
           "<anonuser@example.com>", 0, "<alice@example.com>", 0, "250 2.1.5 Recipient OK"},
          {"service account cannot impersonate another local user", "127.0.0.1", 2587, true, anon,
           pw, "<alice@example.com>", 0, nullptr, 0,
           "550 5.7.1 Client does not have permission to send as this sender"},
          {"password before TLS is refused", "127.0.0.1", 2587, false, anon, pw, nullptr, 0,
           nullptr, 0, "538 5.7.11 Encryption required for requested authentication mechanism"},
          {"wrong password", "127.0.0.1", 2587, true, anon, "wrong", nullptr, 0, nullptr, 0,
           "535 5.7.3 Authentication unsuccessful"},
          {"anonymous web user cannot submit directly", "127.0.0.1", 2587, true, nullptr, nullptr,
           "<visitor@customer.test>", 0, nullptr, 0, "530 5.7.1 Client was not authenticated"},
          {"requireTLS: no MAIL FROM in plaintext", "127.0.0.1", 2587, false, nullptr, nullptr,
           "<visitor@customer.test>", 0, nullptr, 0,
           "530 5.7.0 Must issue a STARTTLS command first"},
          {"nothing listens for this connector on 2525", "127.0.0.1", 2525, false, nullptr, nullptr,
           nullptr, 0, nullptr, 0, "554 5.7.1 No receive connector accepts this client"},
      });
}

TEST(SeedSessions, Seed001AuthenticatedSubmission) {
  const char* me = "mail.express@example.com";
  const char* pw = "MailExpress-Pass-001";
  runSeed("examples/001-authenticated-submission",
          {
              {"Mail Express sends as a local user", "127.0.0.1", 2587, true, me, pw,
               "<bob@example.com>", 0, kExternal, 1000, "250 2.6.0 Queued mail for delivery"},
              {"Mail Express sends as an external address", "127.0.0.1", 2587, true, me, pw,
               "<portal@customer.test>", 0, nullptr, 0, "250 2.1.0 Sender OK"},
              {"bob cannot send as another local user", "127.0.0.1", 2587, true, "bob@example.com",
               "Bob-Pass-001", "<someone@example.com>", 0, nullptr, 0,
               "550 5.7.1 Client does not have permission to send as this sender"},
              {"bob sends as himself to anyone", "127.0.0.1", 2587, true, "bob@example.com",
               "Bob-Pass-001", "<bob@example.com>", 0, kExternal, 0, "250 2.1.5 Recipient OK"},
              {"no anonymous submission", "127.0.0.1", 2587, true, nullptr, nullptr,
               "<bob@example.com>", 0, nullptr, 0, "530 5.7.1 Client was not authenticated"},
          });
}

TEST(SeedSessions, Seed002AnonymousByConnectorRole) {
  runSeed("examples/002-anonymous-by-connector-role",
          {
              {"Internet mail to a local recipient", "203.0.113.5", 2525, false, nullptr, nullptr,
               "<news@customer.test>", 0, "<carol@example.com>", 200,
               "250 2.6.0 Queued mail for delivery"},
              {"the bridgehead is no open relay", "203.0.113.5", 2525, false, nullptr, nullptr,
               "<news@customer.test>", 0, kExternal, 0,
               "550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain"},
              {"internal connector refuses anonymous submission", "127.0.0.33", 2525, true, nullptr,
               nullptr, "<news@customer.test>", 0, nullptr, 0,
               "530 5.7.1 Client was not authenticated"},
              {"an Exchange server authenticates and relays", "127.0.0.33", 2525, true, "hub1",
               "Hub1-Pass-002", "<carol@example.com>", 0, kExternal, 0, "250 2.1.5 Recipient OK"},
              {"a mailbox user is not an Exchange server", "127.0.0.33", 2525, true,
               "carol@example.com", "Carol-Pass-002", nullptr, 0, nullptr, 0,
               "535 5.7.3 Authentication unsuccessful"},
              {"submission connector serves authenticated users", "127.0.0.1", 2587, true,
               "carol@example.com", "Carol-Pass-002", "<carol@example.com>", 0, kExternal, 0,
               "250 2.1.5 Recipient OK"},
          });
}

TEST(SeedSessions, Seed003AnonymousRelayIpRestricted) {
  runSeed("examples/003-anonymous-relay-ip-restricted",
          {
              {"strategy 1: an application server relays anonymously", "127.0.0.17", 2525, false,
               nullptr, nullptr, "<app@example.com>", 0, kExternal, 4096,
               "250 2.6.0 Queued mail for delivery"},
              {"strategy 1: the size limit applies at the end of data", "127.0.0.17", 2525, false,
               nullptr, nullptr, "<app@example.com>", 0, kExternal, k2MiB,
               "552 5.3.4 Message size exceeds fixed maximum message size"},
              {"strategy 1: SIZE= over the limit is refused at MAIL FROM", "127.0.0.17", 2525,
               false, nullptr, nullptr, "<app@example.com>", k2MiB, nullptr, 0,
               "552 5.3.4 Message size exceeds fixed maximum message size"},
              {"strategy 2: an externally secured server bypasses the size limit", "127.0.0.25",
               2525, false, nullptr, nullptr, "<hub@example.com>", k2MiB, kExternal, k2MiB,
               "250 2.6.0 Queued mail for delivery"},
              {"anyone else is refused relay", "127.0.0.1", 2525, false, nullptr, nullptr,
               "<x@customer.test>", 0, kExternal, 0,
               "550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain"},
              {"the percent hack is relaying", "127.0.0.1", 2525, false, nullptr, nullptr,
               "<x@customer.test>", 0, "<victim%customer.test@example.com>", 0,
               "550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain"},
              {"a quoted local part with '@' is relaying", "127.0.0.1", 2525, false, nullptr,
               nullptr, "<x@customer.test>", 0, "<\"victim@customer.test\"@example.com>", 0,
               "550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain"},
              {"a source route does not hide relaying", "127.0.0.1", 2525, false, nullptr, nullptr,
               "<x@customer.test>", 0, "<@example.com:victim@customer.test>", 0,
               "550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain"},
          });
}

TEST(SeedSessions, Seed003ExternallySecuredClientsSeeNoSizeLimit) {
  Harness h("examples/003-anonymous-relay-ip-restricted", "127.0.0.25", 2525);
  const std::string t = h.run({send("EHLO c\r\n")}, Split::Whole);
  EXPECT_NE(t.find("S: 250-SIZE\n"), std::string::npos) << t;
}

TEST(SeedSessions, Seed004IpRestrictionFlag) {
  runSeed(
      "examples/004-ip-restriction-flag",
      {
          {"on-list anonymous client submits", "127.0.0.40", 2525, false, nullptr, nullptr,
           "<app@customer.test>", 0, "<dave@example.com>", 0, "250 2.1.5 Recipient OK"},
          {"on-list anonymous client is not a relay", "127.0.0.40", 2525, false, nullptr, nullptr,
           "<app@customer.test>", 0, kExternal, 0,
           "550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain"},
          {"off-list anonymous client: 5.7.3 at MAIL FROM", "127.0.0.41", 2525, false, nullptr,
           nullptr, "<app@customer.test>", 0, nullptr, 0, "530 5.7.3 Client was not authenticated"},
          {"off-list Exchange server authenticates and relays", "127.0.0.41", 2525, true, "hub2",
           "Hub2-Pass-004", "<hub2@example.com>", 0, kExternal, 300,
           "250 2.6.0 Queued mail for delivery"},
          {"authentication still needs TLS", "127.0.0.41", 2525, false, "dave@example.com",
           "Dave-Pass-004", nullptr, 0, nullptr, 0,
           "538 5.7.11 Encryption required for requested authentication mechanism"},
      });
}

TEST(SeedSessions, Quickstart) {
  runSeed("examples/quickstart",
          {
              {"loopback client relays", "127.0.0.1", 2525, false, nullptr, nullptr,
               "<any@where.test>", 0, kExternal, 100, "250 2.6.0 Queued mail for delivery"},
              {"non-loopback client is not served", "10.0.0.1", 2525, false, nullptr, nullptr,
               nullptr, 0, nullptr, 0, "554 5.7.1 No receive connector accepts this client"},
          });
}

}  // namespace
}  // namespace kuberelay::smtp
