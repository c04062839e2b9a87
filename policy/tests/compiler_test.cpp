#include "kuberelay/policy/compiler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "test_support.h"

namespace kuberelay::policy {
namespace {

using testing::compileExample;
using testing::compileYaml;
using testing::decodeYaml;
using ::testing::ElementsAre;
using testing::errorsOf;
using testing::ip;
using ::testing::IsEmpty;

Selection selectFor(const CompileResult& r, const char* client, uint16_t port,
                    const char* local = "0.0.0.0") {
  return r.snapshot->select({ip(local), port, ip(client)});
}

std::string selectedId(const CompileResult& r, const char* client, uint16_t port,
                       const char* local = "0.0.0.0") {
  auto s = selectFor(r, client, port, local);
  return s.connector ? s.connector->spec.meta.name : "-";
}

const char* kFwd = "  forwarding: {smarthosts: [\"127.0.0.1:2526\"]}\n";

std::string connector(const std::string& name, const std::string& spec) {
  return "---\napiVersion: smtp.kuberelay.io/v1alpha1\nkind: ReceiveConnector\nmetadata: {name: " +
         name + "}\nspec:\n" + spec + kFwd;
}

TEST(Compiler, VersionIsAContentHashIndependentOfOrder) {
  ResourceSet set =
      loadManifestDirectory(testing::sourcePath("examples/003-anonymous-relay-ip-restricted"));
  std::string v1 = compile(set).snapshot->version();
  std::mt19937 rng(1);
  for (int i = 0; i < 5; ++i) {
    std::shuffle(set.connectors.begin(), set.connectors.end(), rng);
    std::shuffle(set.permissions.begin(), set.permissions.end(), rng);
    EXPECT_EQ(compile(set).snapshot->version(), v1);
  }
  EXPECT_EQ(v1.rfind("sha256:", 0), 0u);
  // Any change, including a rotated secret, changes the version.
  set.connectors[0].limits.maxRecipientsPerMessage = 7;
  EXPECT_NE(compile(set).snapshot->version(), v1);
}

TEST(Compiler, RotatedPasswordChangesTheVersion) {
  ResourceSet set =
      loadManifestDirectory(testing::sourcePath("examples/001-authenticated-submission"));
  std::string before = compile(set).snapshot->version();
  for (auto& s : set.secrets) {
    if (s.data.count("users")) s.data["users"] += "\nnew@example.com:$6$salt$hash\n";
  }
  EXPECT_NE(compile(set).snapshot->version(), before);
}

TEST(Compiler, SelectsSpecificBindingThenMostSpecificRange) {
  auto r = compileYaml(
      connector("default", "  bindings: [\"0.0.0.0:25\"]\n") +
      connector(
          "lan",
          "  bindings: [\"0.0.0.0:25\"]\n  remoteIPRanges: [\"192.168.1.0-192.168.1.255\"]\n") +
      connector("host", "  bindings: [\"0.0.0.0:25\"]\n  remoteIPRanges: [\"192.168.1.75\"]\n") +
      connector("nic", "  bindings: [\"10.0.0.5:25\"]\n  remoteIPRanges: [\"172.16.0.0/12\"]\n"));
  ASSERT_THAT(errorsOf(r), IsEmpty());
  // Exchange's own example (RC): .75 -> the single address, .100 -> the /24, else the default.
  EXPECT_EQ(selectedId(r, "192.168.1.75", 25), "host");
  EXPECT_EQ(selectedId(r, "192.168.1.100", 25), "lan");
  EXPECT_EQ(selectedId(r, "8.8.8.8", 25), "default");
  EXPECT_EQ(selectedId(r, "2001:db8::1", 25), "default");
  // The specific local address wins when its ranges match; otherwise 0.0.0.0 serves.
  EXPECT_EQ(selectedId(r, "172.16.9.9", 25, "10.0.0.5"), "nic");
  EXPECT_EQ(selectedId(r, "192.168.1.75", 25, "10.0.0.5"), "host");
  EXPECT_EQ(selectedId(r, "172.16.9.9", 25, "10.0.0.6"), "default");
  EXPECT_EQ(selectedId(r, "8.8.8.8", 587), "-");
  EXPECT_EQ(r.snapshot->listeners().size(), 2u);
}

TEST(Compiler, AnonymousOnlyServesOffListClientsBelowInRangeMatches) {
  auto r = compileYaml(
      connector("partners", "  bindings: [\"0.0.0.0:25\"]\n  remoteIPRanges: [\"10.0.0.0/8\"]\n") +
      connector("hub",
                "  bindings: [\"0.0.0.0:25\"]\n  remoteIPRanges: [\"192.168.0.1\"]\n  "
                "ipRestrictionMode: AnonymousOnly\n"));
  EXPECT_EQ(selectedId(r, "192.168.0.1", 25), "hub");
  EXPECT_TRUE(selectFor(r, "192.168.0.1", 25).inRemoteRange);
  EXPECT_EQ(selectedId(r, "10.1.1.1", 25), "partners");
  EXPECT_EQ(selectedId(r, "8.8.8.8", 25), "hub");
  EXPECT_FALSE(selectFor(r, "8.8.8.8", 25).inRemoteRange);
}

TEST(Compiler, DisabledConnectorsDoNotExist) {
  auto r = compileYaml(connector("off", "  enabled: false\n  bindings: [\"0.0.0.0:25\"]\n"));
  EXPECT_EQ(selectedId(r, "8.8.8.8", 25), "-");
  EXPECT_THAT(r.snapshot->listeners(), IsEmpty());
}

TEST(Compiler, InvalidConnectorKeepsItsDoorAndFailsTemporarily) {
  // "specific" restricts 10.9.9.9 to nothing; if it were dropped, 10.9.9.9 would fall through to
  // the permissive default connector. Quarantine keeps the door closed with a 4xx instead.
  auto r = compileYaml(
      connector("default", "  bindings: [\"0.0.0.0:25\"]\n  permissionGroups: [AnonymousUsers]\n") +
      connector("specific",
                "  bindings: [\"0.0.0.0:25\"]\n  remoteIPRanges: [\"10.9.9.9\", \"bogus\"]\n  "
                "permissionGroups: [Custom]\n"));
  EXPECT_THAT(errorsOf(r), ElementsAre("ReceiveConnector default/specific: spec.remoteIPRanges[1]: "
                                       "\"bogus\" is not an IPv4 address"));
  auto s = SessionPolicy::connect(r.snapshot, {ip("0.0.0.0"), 25, ip("10.9.9.9")});
  EXPECT_EQ(s.connectDecision().reply.toString(),
            "421 4.3.5 Service not available, closing transmission channel");
  EXPECT_EQ(s.connectDecision().reason, "connector_misconfigured");
  auto other = SessionPolicy::connect(r.snapshot, {ip("0.0.0.0"), 25, ip("10.9.9.8")});
  EXPECT_TRUE(other.connectDecision().allowed) << "the rest of the policy still applies";
}

TEST(Compiler, InvalidDenyEntryQuarantinesItsConnectorButInvalidAllowIsJustLeftOut) {
  std::string base =
      connector("c", "  bindings: [\"0.0.0.0:25\"]\n  permissionGroups: [AnonymousUsers]\n");
  auto permission = [](const char* name, bool deny) {
    return std::string(
               "---\napiVersion: smtp.kuberelay.io/v1alpha1\nkind: SenderPermission\n"
               "metadata: {name: ") +
           name +
           "}\nspec:\n  connector: c\n  principal: Anonymous\n"
           "  extendedRights: [AcceptAnyRecipient, NoSuchRight]\n  deny: " +
           (deny ? "true" : "false") + "\n";
  };
  auto withAllow = compileYaml(base + permission("bad-allow", false));
  EXPECT_FALSE(withAllow.snapshot->connectors()[0].quarantined);
  EXPECT_FALSE(withAllow.snapshot->connectors()[0].anonymous.effective() &
               right::kAcceptAnyRecipient);
  auto withDeny = compileYaml(base + permission("bad-deny", true));
  EXPECT_TRUE(withDeny.snapshot->connectors()[0].quarantined);
  EXPECT_EQ(withDeny.snapshot->connectors()[0].quarantineReason,
            "SenderPermission default/bad-deny is a deny entry with invalid fields");
}

TEST(Compiler, DenyWinsOverAllowAndSendAsPatternsApply) {
  auto r = compileYaml(
      connector("c", "  bindings: [\"0.0.0.0:25\"]\n  permissionGroups: [AnonymousUsers]\n") + R"(
---
apiVersion: smtp.kuberelay.io/v1alpha1
kind: SenderPermission
metadata: {name: relay}
spec: {connector: c, principal: Anonymous, extendedRights: [AcceptAnyRecipient]}
---
apiVersion: smtp.kuberelay.io/v1alpha1
kind: SenderPermission
metadata: {name: no-relay}
spec: {connector: c, principal: Anonymous, extendedRights: [ms-Exch-SMTP-Accept-Any-Recipient], deny: true}
---
apiVersion: smtp.kuberelay.io/v1alpha1
kind: SenderPermission
metadata: {name: not-the-ceo}
spec: {connector: c, principal: Anonymous, extendedRights: [AcceptAnySender], deny: true, sendAs: ["ceo@example.com"]}
---
apiVersion: smtp.kuberelay.io/v1alpha1
kind: AcceptedDomain
metadata: {name: d}
spec: {domainName: example.com}
)");
  ASSERT_THAT(errorsOf(r), IsEmpty());
  auto s = SessionPolicy::connect(r.snapshot, {ip("0.0.0.0"), 25, ip("8.8.8.8")});
  EXPECT_EQ(s.rcptTo(MailAddress::split("<x@elsewhere.test>"), 0).reason, "relay_denied");
  EXPECT_EQ(s.mailFrom(MailAddress::split("<ceo@example.com>"), {}).reason, "send_as_denied");
  EXPECT_EQ(s.mailFrom(MailAddress::split("<cfo@example.com>"), {}).reason,
            "authoritative_domain_sender");
}

TEST(Compiler, AcceptedDomainsAreNamespacedAndWildcardsIncludeSubdomains) {
  auto r = compileYaml(R"(
apiVersion: smtp.kuberelay.io/v1alpha1
kind: ReceiveConnector
metadata: {name: c, namespace: a}
spec:
  bindings: ["0.0.0.0:25"]
  permissionGroups: [AnonymousUsers]
  forwarding: {dropDirectory: /tmp/x}
---
apiVersion: smtp.kuberelay.io/v1alpha1
kind: ReceiveConnector
metadata: {name: c, namespace: b}
spec:
  bindings: ["0.0.0.0:26"]
  permissionGroups: [AnonymousUsers]
  forwarding: {dropDirectory: /tmp/x}
---
apiVersion: smtp.kuberelay.io/v1alpha1
kind: AcceptedDomain
metadata: {name: sub, namespace: a}
spec: {domainName: "*.example.com", domainType: InternalRelay}
)");
  ASSERT_THAT(errorsOf(r), IsEmpty());
  auto a = SessionPolicy::connect(r.snapshot, {ip("0.0.0.0"), 25, ip("8.8.8.8")});
  EXPECT_TRUE(a.rcptTo(MailAddress::split("<x@eu.example.com>"), 0).allowed);
  EXPECT_TRUE(a.rcptTo(MailAddress::split("<x@a.b.EXAMPLE.com.>"), 0).allowed);
  EXPECT_TRUE(a.rcptTo(MailAddress::split("<x@example.com>"), 0).allowed)
      << "*.example.com is the domain with its subdomains";
  EXPECT_FALSE(a.rcptTo(MailAddress::split("<x@badexample.com>"), 0).allowed);
  auto b = SessionPolicy::connect(r.snapshot, {ip("0.0.0.0"), 26, ip("8.8.8.8")});
  EXPECT_FALSE(b.rcptTo(MailAddress::split("<x@eu.example.com>"), 0).allowed)
      << "accepted domains apply to the connectors of their namespace";
}

TEST(Compiler, RelayPoolsSplitTheSnapshot) {
  auto set = decodeYaml(connector("a", "  bindings: [\"0.0.0.0:25\"]\n") +
                        connector("b", "  relayPool: edge\n  bindings: [\"0.0.0.0:25\"]\n"));
  auto all = compile(set);
  EXPECT_THAT(std::vector<std::string>(all.snapshot->relayPools().begin(),
                                       all.snapshot->relayPools().end()),
              ElementsAre("default", "edge"));
  auto edge = compile(set, {"edge"});
  ASSERT_EQ(edge.snapshot->connectors().size(), 1u);
  EXPECT_EQ(edge.snapshot->connectors()[0].id, "default/b");
  EXPECT_NE(edge.snapshot->version(), all.snapshot->version());
}

TEST(Compiler, ImplicitTlsAndPlainCannotShareAPort) {
  auto r = compileExample("examples/000-anonymous-web-app");
  ASSERT_THAT(errorsOf(r), IsEmpty());
  ResourceSet set = loadManifestDirectory(testing::sourcePath("examples/000-anonymous-web-app"));
  ReceiveConnector twin = set.connectors[0];
  twin.meta.name = "zz-implicit";
  twin.tlsImplicit = true;
  twin.remoteIPRanges = {*parseIpRange("10.0.0.0/8").range};
  set.connectors.push_back(twin);
  auto conflict = compile(set);
  EXPECT_THAT(errorsOf(conflict), ElementsAre(::testing::HasSubstr(
                                      "ReceiveConnector default/zz-implicit: spec.tls.implicit: "
                                      "binding 0.0.0.0:2587 is plain/STARTTLS")));
}

TEST(Compiler, UsersSecretLinesAreParsed) {
  ParsedUsers u = parseUsersSecret(
      "# comment\n\nalice@example.com:$6$s$h:web-apps,ExchangeServers\r\nhub:$y$j9T$x$y\n"
      "bob:$2b$05$abc\nALICE@example.com:$6$s$h\nbad line\n");
  ASSERT_EQ(u.users.size(), 3u);
  EXPECT_EQ(u.users[0].name, "alice@example.com");
  EXPECT_TRUE(u.users[0].nameIsAddress);
  EXPECT_THAT(u.users[0].groups, ElementsAre("web-apps", "ExchangeServers"));
  EXPECT_EQ(u.users[1].name, "bob");
  EXPECT_THAT(u.errors, ElementsAre("line 6: user \"ALICE@example.com\" is listed twice",
                                    "line 7: expected name:crypt-hash[:group1,group2]"));
}

}  // namespace
}  // namespace kuberelay::policy
