// Each seed document of ../shared/seeds is a table of sessions against its example policy
// (examples/<seed>/), with the exact reply where the session ends.
#include <gtest/gtest.h>

#include "kuberelay/policy/credentials.h"
#include "test_support.h"

namespace kuberelay::policy {
namespace {

using testing::compileExample;
using testing::errorsOf;
using testing::ip;

struct SeedCase {
  const char* name;
  const char* client;
  uint16_t port;
  bool tls;
  const char* user;  // nullptr: anonymous
  const char* password;
  const char* mail;       // nullptr: stop before MAIL FROM
  uint64_t declaredSize;  // SIZE= on MAIL FROM, 0 = none
  const char* rcpt;       // nullptr: stop before RCPT TO
  uint64_t messageBytes;  // 0: stop before end of data
  const char* stage;      // where the session ends: connect starttls auth mail rcpt data
  const char* reply;      // "250 2.1.5", "530 5.7.3", ...
  const char* reason;
};

struct Outcome {
  std::string stage;
  std::string reply;
  std::string reason;
};

Outcome run(const SnapshotPtr& snapshot, const SeedCase& c) {
  auto outcome = [](const char* stage, const Decision& d) {
    return Outcome{stage, std::to_string(d.reply.code) + " " + std::string(d.reply.enhanced),
                   std::string(d.reason)};
  };
  auto session = SessionPolicy::connect(snapshot, {ip("0.0.0.0"), c.port, ip(c.client)});
  if (!session.connectDecision().allowed) return outcome("connect", session.connectDecision());
  if (c.tls) {
    Decision d = session.startTls();
    if (!d.allowed) return outcome("starttls", d);
    session.tlsEstablished();
  }
  if (c.user) {
    Decision start = session.authStart("PLAIN");
    if (!start.allowed) return outcome("auth", start);
    const UserEntry* entry = verifyCredentials(*session.connector(), c.user, c.password);
    Decision d = session.authenticated(entry);
    if (!d.allowed || !c.mail) return outcome("auth", d);
  }
  if (!c.mail) return outcome("connect", session.connectDecision());
  std::optional<uint64_t> size;
  if (c.declaredSize) size = c.declaredSize;
  Decision mail = session.mailFrom(MailAddress::split(c.mail), size);
  if (!mail.allowed || !c.rcpt) return outcome("mail", mail);
  Decision rcpt = session.rcptTo(MailAddress::split(c.rcpt), 0);
  if (!rcpt.allowed || !c.messageBytes) return outcome("rcpt", rcpt);
  return outcome("data", session.messageSize(c.messageBytes));
}

void runTable(const char* folder, const std::vector<SeedCase>& cases) {
  CompileResult result = compileExample(folder);
  ASSERT_EQ(errorsOf(result), std::vector<std::string>{}) << folder;
  for (const auto& c : cases) {
    Outcome o = run(result.snapshot, c);
    EXPECT_EQ(o.stage, c.stage) << folder << ": " << c.name;
    EXPECT_EQ(o.reply, c.reply) << folder << ": " << c.name;
    EXPECT_EQ(o.reason, c.reason) << folder << ": " << c.name;
  }
}

constexpr const char* kExternal = "<someone@customer.test>";
constexpr uint64_t k2MiB = 2ull * 1024 * 1024;

// Seed 000 (Q195681): a web application with no user accounts of its own sends through one
// service account, AnonUser, on behalf of anonymous web users.
TEST(Seed000AnonymousWebApp, ServiceAccountSubmitsOnBehalfOfAnonymousWebUsers) {
  const char* anon = "anonuser@example.com";
  const char* pw = "AnonUser-Pass-000";
  runTable(
      "examples/000-anonymous-web-app",
      {
          {"service account sends as itself to an external recipient", "127.0.0.1", 2587, true,
           anon, pw, "<anonuser@example.com>", 0, kExternal, 4096, "data", "250 2.6.0", "ok"},
          {"service account mails a local recipient", "127.0.0.1", 2587, true, anon, pw,
           "<anonuser@example.com>", 0, "<alice@example.com>", 0, "rcpt", "250 2.1.5",
           "accepted_domain"},
          {"service account may send bounces (null sender)", "127.0.0.1", 2587, true, anon, pw,
           "<>", 0, nullptr, 0, "mail", "250 2.1.0", "null_sender"},
          {"service account cannot impersonate another local user", "127.0.0.1", 2587, true, anon,
           pw, "<alice@example.com>", 0, nullptr, 0, "mail", "550 5.7.1", "sender_denied"},
          {"service account cannot impersonate an external address", "127.0.0.1", 2587, true, anon,
           pw, "<ceo@customer.test>", 0, nullptr, 0, "mail", "550 5.7.1", "sender_denied"},
          {"password before TLS is refused", "127.0.0.1", 2587, false, anon, pw, nullptr, 0,
           nullptr, 0, "auth", "538 5.7.11", "encryption_required"},
          {"wrong password", "127.0.0.1", 2587, true, anon, "wrong", nullptr, 0, nullptr, 0, "auth",
           "535 5.7.3", "bad_credentials"},
          {"unknown account", "127.0.0.1", 2587, true, "mallory@example.com", pw, nullptr, 0,
           nullptr, 0, "auth", "535 5.7.3", "bad_credentials"},
          {"anonymous web user cannot submit directly", "127.0.0.1", 2587, true, nullptr, nullptr,
           "<visitor@customer.test>", 0, nullptr, 0, "mail", "530 5.7.1", "not_authenticated"},
          {"requireTLS: no MAIL FROM in plaintext", "127.0.0.1", 2587, false, nullptr, nullptr,
           "<visitor@customer.test>", 0, nullptr, 0, "mail", "530 5.7.0", "tls_required"},
          {"a second mailbox sends as itself", "127.0.0.1", 2587, true, "alice@example.com",
           "Alice-Pass-000", "<alice@example.com>", 0, kExternal, 0, "rcpt", "250 2.1.5",
           "relay_right"},
          {"nothing listens for this connector on 2525", "127.0.0.1", 2525, false, nullptr, nullptr,
           nullptr, 0, nullptr, 0, "connect", "554 5.7.1", "no_connector"},
      });
}

// Seed 001 (Mail Express): authenticated submission on 587, basic auth over TLS, Exchange users
// only; Accept-Authoritative-Domain-Sender for local From addresses, Accept-Any-Sender for
// external ones.
TEST(Seed001AuthenticatedSubmission, SendAsNeedsTheTwoExtendedRights) {
  const char* me = "mail.express@example.com";
  const char* pw = "MailExpress-Pass-001";
  const char* bob = "bob@example.com";
  const char* bobPw = "Bob-Pass-001";
  runTable(
      "examples/001-authenticated-submission",
      {
          {"Mail Express sends as a local user (Accept-Authoritative-Domain-Sender)", "127.0.0.1",
           2587, true, me, pw, "<bob@example.com>", 0, kExternal, 0, "rcpt", "250 2.1.5",
           "relay_right"},
          {"local sender check is case-insensitive", "127.0.0.1", 2587, true, me, pw,
           "<Bob@EXAMPLE.COM>", 0, nullptr, 0, "mail", "250 2.1.0", "authoritative_domain_sender"},
          {"Mail Express sends as an external address (Accept-Any-Sender)", "127.0.0.1", 2587, true,
           me, pw, "<portal@customer.test>", 0, nullptr, 0, "mail", "250 2.1.0", "any_sender"},
          {"Mail Express sends as itself", "127.0.0.1", 2587, true, me, pw,
           "<mail.express@example.com>", 0, nullptr, 0, "mail", "250 2.1.0", "own_address"},
          {"a user without the rights cannot send as a local user", "127.0.0.1", 2587, true, bob,
           bobPw, "<mail.express@example.com>", 0, nullptr, 0, "mail", "550 5.7.1",
           "sender_denied"},
          {"a user without the rights cannot send as an external address", "127.0.0.1", 2587, true,
           bob, bobPw, "<portal@customer.test>", 0, nullptr, 0, "mail", "550 5.7.1",
           "sender_denied"},
          {"a user sends as itself to anyone", "127.0.0.1", 2587, true, bob, bobPw,
           "<bob@example.com>", 0, kExternal, 0, "rcpt", "250 2.1.5", "relay_right"},
          {"no anonymous submission", "127.0.0.1", 2587, true, nullptr, nullptr,
           "<bob@example.com>", 0, nullptr, 0, "mail", "530 5.7.1", "not_authenticated"},
          {"basic authentication requires TLS", "127.0.0.1", 2587, false, me, pw, nullptr, 0,
           nullptr, 0, "auth", "538 5.7.11", "encryption_required"},
      });
}

// Seed 002 (Exchange Server Analyzer): anonymous off on internal and submission connectors,
// on for the Internet-facing bridgehead.
TEST(Seed002AnonymousByConnectorRole, AnonymousOnlyOnTheInternetBridgehead) {
  runTable(
      "examples/002-anonymous-by-connector-role",
      {
          {"Internet mail to a local recipient is accepted anonymously", "203.0.113.5", 2525, false,
           nullptr, nullptr, "<news@customer.test>", 0, "<carol@example.com>", 0, "rcpt",
           "250 2.1.5", "accepted_domain"},
          {"the bridgehead is no open relay", "203.0.113.5", 2525, false, nullptr, nullptr,
           "<news@customer.test>", 0, kExternal, 0, "rcpt", "550 5.7.54", "relay_denied"},
          {"loopback clients outside the internal range land on the bridgehead", "127.0.0.1", 2525,
           true, nullptr, nullptr, "<news@customer.test>", 0, "<carol@example.com>", 0, "rcpt",
           "250 2.1.5", "accepted_domain"},
          {"internal connector refuses anonymous submission", "127.0.0.33", 2525, true, nullptr,
           nullptr, "<news@customer.test>", 0, nullptr, 0, "mail", "530 5.7.1",
           "not_authenticated"},
          {"an Exchange server authenticates on the internal connector and relays", "127.0.0.33",
           2525, true, "hub1", "Hub1-Pass-002", "<carol@example.com>", 0, kExternal, 0, "rcpt",
           "250 2.1.5", "relay_right"},
          {"a mailbox user is not an Exchange server", "127.0.0.33", 2525, true,
           "carol@example.com", "Carol-Pass-002", nullptr, 0, nullptr, 0, "auth", "535 5.7.3",
           "no_submit_right"},
          {"submission connector refuses anonymous submission", "127.0.0.1", 2587, true, nullptr,
           nullptr, "<carol@example.com>", 0, nullptr, 0, "mail", "530 5.7.1", "not_authenticated"},
          {"submission connector serves authenticated users", "127.0.0.1", 2587, true,
           "carol@example.com", "Carol-Pass-002", "<carol@example.com>", 0, kExternal, 0, "rcpt",
           "250 2.1.5", "relay_right"},
      });
}

// Seed 003 (Allow Anonymous Relay): both strategies, each restricted to its remote IP ranges.
TEST(Seed003AnonymousRelayIpRestricted, BothStrategiesOnlyFromTheirRanges) {
  runTable(
      "examples/003-anonymous-relay-ip-restricted",
      {
          {"strategy 1: an application server relays anonymously", "127.0.0.17", 2525, false,
           nullptr, nullptr, "<app@example.com>", 0, kExternal, 4096, "data", "250 2.6.0", "ok"},
          {"strategy 1: the last address of the range relays", "127.0.0.23", 2525, false, nullptr,
           nullptr, "<app@example.com>", 0, kExternal, 0, "rcpt", "250 2.1.5", "relay_right"},
          {"strategy 1: messages stay anonymous, the size limit applies", "127.0.0.17", 2525, false,
           nullptr, nullptr, "<app@example.com>", 0, kExternal, k2MiB, "data", "552 5.3.4",
           "size_exceeded"},
          {"strategy 1: SIZE= over the limit is refused at MAIL FROM", "127.0.0.17", 2525, false,
           nullptr, nullptr, "<app@example.com>", k2MiB, nullptr, 0, "mail", "552 5.3.4",
           "size_exceeded"},
          {"strategy 2: an externally secured server relays", "127.0.0.25", 2525, false, nullptr,
           nullptr, "<hub@example.com>", 0, kExternal, 0, "rcpt", "250 2.1.5", "relay_right"},
          {"strategy 2: and bypasses the message size limit", "127.0.0.25", 2525, false, nullptr,
           nullptr, "<hub@example.com>", k2MiB, kExternal, k2MiB, "data", "250 2.6.0", "ok"},
          {"strategy 2: any sender is accepted", "127.0.0.31", 2525, false, nullptr, nullptr,
           "<someone@elsewhere.test>", 0, nullptr, 0, "mail", "250 2.1.0", "any_sender"},
          {"anyone else is refused relay", "127.0.0.1", 2525, false, nullptr, nullptr,
           "<x@customer.test>", 0, kExternal, 0, "rcpt", "550 5.7.54", "relay_denied"},
          {"the address just past the strategy-2 range is refused relay", "127.0.0.32", 2525, false,
           nullptr, nullptr, "<x@customer.test>", 0, kExternal, 0, "rcpt", "550 5.7.54",
           "relay_denied"},
          {"anyone else may still deliver to the accepted domain", "127.0.0.1", 2525, false,
           nullptr, nullptr, "<x@customer.test>", 0, "<user@example.com>", 0, "rcpt", "250 2.1.5",
           "accepted_domain"},
          {"IPv6 clients are refused relay", "::1", 2525, false, nullptr, nullptr,
           "<x@customer.test>", 0, kExternal, 0, "rcpt", "550 5.7.54", "relay_denied"},
          {"the percent hack is relaying", "127.0.0.1", 2525, false, nullptr, nullptr,
           "<x@customer.test>", 0, "<victim%customer.test@example.com>", 0, "rcpt", "550 5.7.54",
           "untrusted_routing"},
          {"an IPv4-mapped client is the IPv4 client", "::ffff:127.0.0.17", 2525, false, nullptr,
           nullptr, "<app@example.com>", 0, kExternal, 0, "rcpt", "250 2.1.5", "relay_right"},
      });
}

// Seed 004 (SmtpIpRestrictionFlag=1): the IP list restricts anonymous clients only.
TEST(Seed004IpRestrictionFlag, AnonymousOnlyRestrictsAnonymousClientsOnly) {
  runTable(
      "examples/004-ip-restriction-flag",
      {
          {"on-list anonymous client submits", "127.0.0.40", 2525, false, nullptr, nullptr,
           "<app@customer.test>", 0, "<dave@example.com>", 0, "rcpt", "250 2.1.5",
           "accepted_domain"},
          {"on-list anonymous client is not a relay", "127.0.0.40", 2525, false, nullptr, nullptr,
           "<app@customer.test>", 0, kExternal, 0, "rcpt", "550 5.7.54", "relay_denied"},
          {"off-list client may connect", "127.0.0.41", 2525, false, nullptr, nullptr, nullptr, 0,
           nullptr, 0, "connect", "220 ", "ok"},
          {"off-list anonymous client: 5.7.3 before MAIL FROM is accepted", "127.0.0.41", 2525,
           false, nullptr, nullptr, "<app@customer.test>", 0, nullptr, 0, "mail", "530 5.7.3",
           "anonymous_off_list"},
          {"off-list anonymous over TLS is still refused", "127.0.0.41", 2525, true, nullptr,
           nullptr, "<app@customer.test>", 0, nullptr, 0, "mail", "530 5.7.3",
           "anonymous_off_list"},
          {"off-list IPv6 anonymous client is refused", "::1", 2525, false, nullptr, nullptr,
           "<app@customer.test>", 0, nullptr, 0, "mail", "530 5.7.3", "anonymous_off_list"},
          {"an off-list Exchange server authenticates and relays", "127.0.0.41", 2525, true, "hub2",
           "Hub2-Pass-004", "<hub2@example.com>", 0, kExternal, 0, "rcpt", "250 2.1.5",
           "relay_right"},
          {"an off-list mailbox user authenticates from anywhere", "10.20.30.40", 2525, true,
           "dave@example.com", "Dave-Pass-004", "<dave@example.com>", 0, kExternal, 0, "rcpt",
           "250 2.1.5", "relay_right"},
          {"authentication still needs TLS", "127.0.0.41", 2525, false, "dave@example.com",
           "Dave-Pass-004", nullptr, 0, nullptr, 0, "auth", "538 5.7.11", "encryption_required"},
          {"a failed login leaves the client anonymous and off-list", "127.0.0.41", 2525, true,
           "dave@example.com", "nope", nullptr, 0, nullptr, 0, "auth", "535 5.7.3",
           "bad_credentials"},
      });
}

TEST(Seed004IpRestrictionFlag, AllClientsModeForContrast) {
  runTable(
      "examples/004-ip-restriction-flag/all-clients",
      {
          {"on-list anonymous client submits", "127.0.0.40", 2525, false, nullptr, nullptr,
           "<app@customer.test>", 0, "<dave@example.com>", 0, "rcpt", "250 2.1.5",
           "accepted_domain"},
          {"off-list anonymous client is not served at all", "127.0.0.41", 2525, false, nullptr,
           nullptr, nullptr, 0, nullptr, 0, "connect", "554 5.7.1", "no_connector"},
          {"off-list Exchange server cannot even authenticate", "127.0.0.41", 2525, true, "hub2",
           "Hub2-Pass-004", nullptr, 0, nullptr, 0, "connect", "554 5.7.1", "no_connector"},
          {"on-list client authenticates and relays", "127.0.0.40", 2525, true, "hub2",
           "Hub2-Pass-004", "<hub2@example.com>", 0, kExternal, 0, "rcpt", "250 2.1.5",
           "relay_right"},
      });
}

TEST(Quickstart, LoopbackAnonymousRelayOnly) {
  runTable("examples/quickstart",
           {
               {"loopback client relays", "127.0.0.1", 2525, false, nullptr, nullptr,
                "<me@example.com>", 0, kExternal, 100, "data", "250 2.6.0", "ok"},
               {"IPv6 loopback relays", "::1", 2525, false, nullptr, nullptr, "<me@example.com>", 0,
                kExternal, 0, "rcpt", "250 2.1.5", "relay_right"},
               {"no other client is served", "192.0.2.1", 2525, false, nullptr, nullptr, nullptr, 0,
                nullptr, 0, "connect", "554 5.7.1", "no_connector"},
           });
}

TEST(SeedEhlo, AdvertisementFollowsMechanismsAndTls) {
  CompileResult result = compileExample("examples/001-authenticated-submission");
  auto session = SessionPolicy::connect(result.snapshot, {ip("0.0.0.0"), 2587, ip("127.0.0.1")});
  Advertisement before = session.ehlo();
  EXPECT_TRUE(before.startTls);
  EXPECT_FALSE(before.auth) << "no AUTH before TLS under BasicAuthRequireTLS";
  EXPECT_EQ(before.sizeLimit, 36u * 1024 * 1024);
  session.tlsEstablished();
  Advertisement after = session.ehlo();
  EXPECT_FALSE(after.startTls);
  EXPECT_TRUE(after.auth);
  EXPECT_EQ(session.startTls().reason, "already_tls");

  CompileResult seed3 = compileExample("examples/003-anonymous-relay-ip-restricted");
  auto trusted = SessionPolicy::connect(seed3.snapshot, {ip("0.0.0.0"), 2525, ip("127.0.0.25")});
  EXPECT_EQ(trusted.ehlo().sizeLimit, 0u) << "Bypass-Message-Size-Limit: SIZE without a limit";
  EXPECT_FALSE(trusted.ehlo().auth);
  EXPECT_EQ(trusted.authStart("PLAIN").reason, "mechanism_not_offered");
}

}  // namespace
}  // namespace kuberelay::policy
