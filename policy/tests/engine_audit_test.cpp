// enforcement: Audit — refusals are reported, not enforced, except where that would weaken
// security: TLS requirements, and anonymous relaying the policy does not allow.
#include <gtest/gtest.h>

#include "kuberelay/policy/credentials.h"
#include "test_support.h"

namespace kuberelay::policy {
namespace {

using testing::ip;

SnapshotPtr auditVariant(const char* folder) {
  ResourceSet set = loadManifestDirectory(testing::sourcePath(folder));
  for (auto& c : set.connectors) c.enforcement = Enforcement::Audit;
  CompileResult r = compile(set);
  EXPECT_EQ(r.errorCount(), 0u);
  return r.snapshot;
}

TEST(AuditMode, OffListAnonymousClientProceedsButIsReported) {
  auto snap = auditVariant("examples/004-ip-restriction-flag");
  auto s = SessionPolicy::connect(snap, {ip("0.0.0.0"), 2525, ip("127.0.0.41")});
  Decision mail = s.mailFrom(MailAddress::split("<app@customer.test>"), std::nullopt);
  EXPECT_TRUE(mail.allowed);
  EXPECT_TRUE(mail.audited);
  EXPECT_EQ(mail.reply.toString(), "250 2.1.0 Sender OK");
  EXPECT_EQ(mail.wouldRefuse.toString(), "530 5.7.3 Client was not authenticated");
  EXPECT_EQ(mail.wouldRefuseReason, "anonymous_off_list");
  Decision local = s.rcptTo(MailAddress::split("<dave@example.com>"), 0);
  EXPECT_TRUE(local.allowed);
  EXPECT_FALSE(local.audited);
}

TEST(AuditMode, NeverOpensAnAnonymousRelay) {
  auto snap = auditVariant("examples/004-ip-restriction-flag");
  for (const char* client : {"127.0.0.40", "127.0.0.41"}) {
    auto s = SessionPolicy::connect(snap, {ip("0.0.0.0"), 2525, ip(client)});
    Trace trace;
    Decision rcpt = s.rcptTo(MailAddress::split("<victim@elsewhere.test>"), 0, &trace);
    EXPECT_FALSE(rcpt.allowed) << client;
    EXPECT_EQ(rcpt.reply.toString(),
              "550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain");
    EXPECT_EQ(rcpt.reason, "relay_denied");
    EXPECT_EQ(trace.steps.back().rule, "audit");
    EXPECT_EQ(s.rcptTo(MailAddress::split("<x%elsewhere.test@example.com>"), 0).reason,
              "untrusted_routing");
  }
}

// Found by the adversarial tier: the recipient limit is decided first, audit let it pass, and
// the relay rules behind it were never asked.
TEST(AuditMode, PastTheRecipientLimitAnAnonymousClientStillCannotRelay) {
  auto snap = auditVariant("examples/004-ip-restriction-flag");
  auto s = SessionPolicy::connect(snap, {ip("0.0.0.0"), 2525, ip("127.0.0.40")});
  const uint32_t limit = snap->connectors().front().spec.limits.maxRecipientsPerMessage;
  Decision local = s.rcptTo(MailAddress::split("<dave@example.com>"), limit);
  EXPECT_TRUE(local.allowed);  // reported, not enforced
  EXPECT_EQ(local.wouldRefuseReason, "too_many_recipients");
  for (const char* victim : {"<victim@elsewhere.test>", "<x%elsewhere.test@example.com>"}) {
    Decision rcpt = s.rcptTo(MailAddress::split(victim), limit);
    EXPECT_FALSE(rcpt.allowed) << victim;
    EXPECT_EQ(rcpt.reply.code, 550) << victim;
  }
}

TEST(AuditMode, TlsRequirementsAreAlwaysEnforced) {
  auto snap = auditVariant("examples/000-anonymous-web-app");
  auto s = SessionPolicy::connect(snap, {ip("0.0.0.0"), 2587, ip("127.0.0.1")});
  EXPECT_EQ(s.authStart("PLAIN").reason, "encryption_required");
  Decision mail = s.mailFrom(MailAddress::split("<a@example.com>"), std::nullopt);
  EXPECT_FALSE(mail.allowed);
  EXPECT_EQ(mail.reason, "tls_required");
}

TEST(AuditMode, AuthenticatedUserWithoutSubmitIsReportedAndProceeds) {
  auto snap = auditVariant("examples/002-anonymous-by-connector-role");
  auto s = SessionPolicy::connect(snap, {ip("0.0.0.0"), 2525, ip("127.0.0.40")});
  s.tlsEstablished();
  const UserEntry* carol = verifyCredentials(*s.connector(), "carol@example.com", "Carol-Pass-002");
  ASSERT_NE(carol, nullptr);
  Decision auth = s.authenticated(carol);
  EXPECT_TRUE(auth.allowed);
  EXPECT_TRUE(auth.audited);
  EXPECT_EQ(auth.wouldRefuseReason, "no_submit_right");
  EXPECT_TRUE(s.isAuthenticated());
  // Authenticated relaying is not the open-relay case: it is audited too.
  Decision rcpt = s.rcptTo(MailAddress::split("<someone@elsewhere.test>"), 0);
  EXPECT_TRUE(rcpt.allowed);
  EXPECT_TRUE(rcpt.audited);
  // A wrong password is never audited into success.
  auto t = SessionPolicy::connect(snap, {ip("0.0.0.0"), 2525, ip("127.0.0.40")});
  t.tlsEstablished();
  EXPECT_FALSE(t.authenticated(nullptr).allowed);
}

TEST(AuditMode, EnforceIsTheDefault) {
  CompileResult r = testing::compileExample("examples/004-ip-restriction-flag");
  auto s = SessionPolicy::connect(r.snapshot, {ip("0.0.0.0"), 2525, ip("127.0.0.41")});
  Decision mail = s.mailFrom(MailAddress::split("<app@customer.test>"), std::nullopt);
  EXPECT_FALSE(mail.allowed);
  EXPECT_FALSE(mail.audited);
}

}  // namespace
}  // namespace kuberelay::policy
