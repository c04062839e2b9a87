#include "kuberelay/policy/manifest.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "test_support.h"

namespace kuberelay::policy {
namespace {

using testing::compileYaml;
using testing::decodeYaml;
using ::testing::ElementsAre;
using testing::errorsOf;
using ::testing::IsEmpty;
using testing::sourcePath;

// Every file in policy/tests/bad/ lists the errors it must produce in "# expect:" lines.
TEST(BadManifests, AreRejectedWithFieldPaths) {
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(sourcePath("policy/tests/bad"))) {
    std::ifstream in(entry.path());
    std::stringstream text;
    text << in.rdbuf();
    std::vector<std::string> expected;
    std::istringstream lines(text.str());
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("# expect: ", 0) == 0) expected.push_back(line.substr(10));
    }
    ASSERT_FALSE(expected.empty()) << entry.path();
    ResourceSet set;
    decodeManifests(text.str(), entry.path().filename().string(), set);
    std::vector<std::string> errors = errorsOf(compile(set));
    for (const auto& e : expected) {
      EXPECT_THAT(errors, ::testing::Contains(e)) << entry.path().filename();
    }
    ++files;
  }
  EXPECT_GE(files, 10);
}

TEST(Manifest, AppliesExchangeDefaults) {
  auto set = decodeYaml(R"(
apiVersion: smtp.kuberelay.io/v1alpha1
kind: ReceiveConnector
metadata: {name: internet, namespace: mail}
spec:
  bindings: ["0.0.0.0:25", "[::]:25", "[2001:db8::5]:2525", "10.2.3.4:25"]
  forwarding: {dropDirectory: /var/spool/drop}
)");
  ASSERT_THAT(set.diagnostics, IsEmpty());
  ASSERT_EQ(set.connectors.size(), 1u);
  const ReceiveConnector& rc = set.connectors[0];
  EXPECT_TRUE(rc.enabled);
  EXPECT_EQ(rc.relayPool, "default");
  EXPECT_EQ(rc.meta.ns, "mail");
  ASSERT_EQ(rc.bindings.size(), 4u);
  EXPECT_EQ(rc.bindings[0].toString(), "0.0.0.0:25");
  EXPECT_EQ(rc.bindings[1].toString(), "[::]:25");
  EXPECT_EQ(rc.bindings[2].toString(), "[2001:db8::5]:2525");
  EXPECT_EQ(rc.bindings[3].toString(), "10.2.3.4:25");
  ASSERT_EQ(rc.remoteIPRanges.size(), 2u);
  EXPECT_EQ(rc.remoteIPRanges[0].toString(), "0.0.0.0/0");
  EXPECT_EQ(rc.remoteIPRanges[1].toString(), "::/0");
  EXPECT_EQ(rc.ipRestrictionMode, IpRestrictionMode::AllClients);
  EXPECT_EQ(rc.limits.maxMessageSize, 36u * 1024 * 1024);
  EXPECT_EQ(rc.limits.maxRecipientsPerMessage, 200u);
  EXPECT_EQ(rc.limits.maxInboundConnectionPerSource, 20u);
  EXPECT_EQ(rc.limits.connectionTimeout, Millis(600000));
  EXPECT_EQ(rc.limits.tarpitInterval, Millis(5000));
  EXPECT_EQ(rc.forwarding.tls, ForwardTls::Opportunistic);
}

TEST(Manifest, ReadsQuantitiesDurationsAndRights) {
  auto set = decodeYaml(R"(
apiVersion: smtp.kuberelay.io/v1alpha1
kind: ReceiveConnector
metadata: {name: c}
spec:
  bindings: ["0.0.0.0:25"]
  limits: {maxMessageSize: 25M, maxHeaderSize: 1.5Mi, connectionTimeout: 1h30m, tarpitInterval: 500ms, messageRateLimit: 600}
  forwarding: {smarthosts: ["[2001:db8::1]:25", "mx.example.com:2525"], tls: Required}
---
apiVersion: smtp.kuberelay.io/v1alpha1
kind: SenderPermission
metadata: {name: p}
spec:
  connector: c
  principal: Group
  name: web-apps
  extendedRights: [MS-EXCH-SMTP-SUBMIT, acceptanysender, Ms-Exchange-SMTP-Accept-Any-Recipient]
  sendAs: ["NoReply@Example.com", "*@*.example.org"]
)");
  ASSERT_THAT(set.diagnostics, IsEmpty());
  const Limits& l = set.connectors[0].limits;
  EXPECT_EQ(l.maxMessageSize, 25000000u);
  EXPECT_EQ(l.maxHeaderSize, 1572864u);
  EXPECT_EQ(l.connectionTimeout, Millis(5400000));
  EXPECT_EQ(l.tarpitInterval, Millis(500));
  EXPECT_EQ(l.messageRateLimit, 600u);
  EXPECT_EQ(set.connectors[0].forwarding.smarthosts.size(), 2u);
  const SenderPermission& p = set.permissions[0];
  EXPECT_EQ(p.rights, right::kSubmit | right::kAcceptAnySender | right::kAcceptAnyRecipient);
  EXPECT_THAT(p.sendAs, ElementsAre("noreply@example.com", "*@*.example.org"));
}

TEST(Manifest, ReadsJsonListsAndBase64Secrets) {
  auto set = decodeYaml(R"({"apiVersion": "v1", "kind": "List", "items": [
    {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "mail"},
     "type": "Opaque", "data": {"users": "YWxpY2U6JDYkeCR5"}},
    {"apiVersion": "smtp.kuberelay.io/v1alpha1", "kind": "AcceptedDomain",
     "metadata": {"name": "d", "namespace": "mail"},
     "spec": {"domainName": "*.Example.COM.", "domainType": "InternalRelay"}},
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "mail"}}]})");
  ASSERT_THAT(set.diagnostics, IsEmpty());
  ASSERT_EQ(set.secrets.size(), 1u);
  EXPECT_EQ(set.secrets[0].data.at("users"), "alice:$6$x$y");
  ASSERT_EQ(set.domains.size(), 1u);
  EXPECT_EQ(set.domains[0].domain, "example.com");
  EXPECT_TRUE(set.domains[0].wildcard);
  EXPECT_EQ(set.domains[0].type, DomainType::InternalRelay);
}

TEST(Manifest, UnreadableDocumentsAreFlaggedForTheReloader) {
  EXPECT_TRUE(hasUnreadableManifests(decodeYaml("kind: [unclosed")));
  EXPECT_TRUE(hasUnreadableManifests(decodeYaml("- just\n- a list\n")));
  EXPECT_FALSE(hasUnreadableManifests(decodeYaml(R"(
apiVersion: smtp.kuberelay.io/v1alpha1
kind: AcceptedDomain
metadata: {name: d}
spec: {domainName: "not a domain"}
)"))) << "an invalid object is the compiler's to quarantine, not a reason to refuse the reload";
}

TEST(Manifest, WrongApiVersionIsAnError) {
  auto result = compileYaml(R"(
apiVersion: smtp.kuberelay.io/v1
kind: AcceptedDomain
metadata: {name: d}
spec: {domainName: example.com}
)");
  EXPECT_THAT(errorsOf(result),
              ElementsAre("AcceptedDomain default/d: apiVersion: \"smtp.kuberelay.io/v1\" is not "
                          "smtp.kuberelay.io/v1alpha1"));
}

TEST(Manifest, EveryExampleFolderCompilesWithoutErrors) {
  int folders = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(sourcePath("examples"))) {
    if (!entry.is_directory()) continue;
    CompileResult result = compile(loadManifestDirectory(entry.path()));
    EXPECT_THAT(errorsOf(result), IsEmpty()) << entry.path();
    EXPECT_FALSE(result.snapshot->connectors().empty()) << entry.path();
    ++folders;
  }
  EXPECT_GE(folders, 8);
}

}  // namespace
}  // namespace kuberelay::policy
