#include "kuberelay/policy/analyzer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "test_support.h"

namespace kuberelay::policy {
namespace {

using testing::compileExample;
using testing::compileYaml;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;
using testing::warningReasons;

// Seed 002: the Exchange Server Analyzer warns when anonymous access is allowed on internal and
// dedicated submission connectors; never on the Internet-facing bridgehead.
TEST(Analyzer, Seed002RiskyVariantsAreReported) {
  auto risky = compileExample("examples/002-anonymous-by-connector-role/risky");
  EXPECT_THAT(warningReasons(risky, "internal-hub"),
              UnorderedElementsAre("AnonymousOnInternalConnector"));
  EXPECT_THAT(warningReasons(risky, "client-submission"),
              UnorderedElementsAre("AnonymousOnSubmissionConnector", "BasicAuthWithoutTls"));
  EXPECT_THAT(warningReasons(risky, "internet-bridgehead"), IsEmpty());
}

TEST(Analyzer, SeedExamplesAsShippedAreClean) {
  for (const char* folder :
       {"examples/000-anonymous-web-app", "examples/001-authenticated-submission",
        "examples/002-anonymous-by-connector-role", "examples/003-anonymous-relay-ip-restricted",
        "examples/004-ip-restriction-flag", "examples/quickstart"}) {
    auto r = compileExample(folder);
    EXPECT_EQ(r.warningCount(), 0u)
        << folder << ": " << (r.diagnostics.empty() ? "" : r.diagnostics[0].toString());
  }
}

// Seed 004's contrast variant: with AllClients the one listed address carries both anonymous
// clients and Exchange servers, which is what seed 002 warns about; AnonymousOnly (the seed's
// design) makes the list an explicit anonymous allow-list and is not flagged.
TEST(Analyzer, Seed004AllClientsVariantMixesAnonymousAndServers) {
  auto r = compileExample("examples/004-ip-restriction-flag/all-clients");
  EXPECT_THAT(warningReasons(r, "hub-anonymous-only"),
              UnorderedElementsAre("AnonymousOnInternalConnector"));
}

const char* kFwd = "  forwarding: {smarthosts: [\"127.0.0.1:2526\"]}\n";

std::string connector(const std::string& name, const std::string& spec) {
  return "---\napiVersion: smtp.kuberelay.io/v1alpha1\nkind: ReceiveConnector\nmetadata: {name: " +
         name + "}\nspec:\n" + spec + kFwd;
}

std::string anonymousRelay(const std::string& name) {
  return "---\napiVersion: smtp.kuberelay.io/v1alpha1\nkind: SenderPermission\nmetadata: {name: " +
         name + "-relay}\nspec: {connector: " + name +
         ", principal: Anonymous, extendedRights: [AcceptAnyRecipient]}\n";
}

TEST(Analyzer, OpenRelayWhenAnonymousRelayReachesEveryAddress) {
  auto r = compileYaml(
      connector("open", "  bindings: [\"0.0.0.0:25\"]\n  permissionGroups: [AnonymousUsers]\n") +
      anonymousRelay("open") +
      connector("split",
                "  bindings: [\"0.0.0.0:26\"]\n  remoteIPRanges: [\"0.0.0.0/1\", "
                "\"128.0.0.0-255.255.255.255\"]\n  permissionGroups: [AnonymousUsers]\n") +
      anonymousRelay("split") +
      connector("restricted",
                "  bindings: [\"0.0.0.0:27\"]\n  remoteIPRanges: [\"10.0.0.0/8\"]\n  "
                "permissionGroups: [AnonymousUsers]\n") +
      anonymousRelay("restricted"));
  EXPECT_THAT(warningReasons(r, "open"), UnorderedElementsAre("OpenRelay"));
  EXPECT_THAT(warningReasons(r, "split"), UnorderedElementsAre("OpenRelay"));
  EXPECT_THAT(warningReasons(r, "restricted"), IsEmpty());
}

TEST(Analyzer, ExternalAuthoritativeOnAWideRange) {
  auto r = compileYaml(
      connector(
          "trusted",
          "  bindings: [\"0.0.0.0:25\"]\n  remoteIPRanges: [\"10.0.0.0/16\"]\n"
          "  authMechanisms: [ExternalAuthoritative]\n  permissionGroups: [ExchangeServers]\n") +
      connector(
          "peers",
          "  bindings: [\"0.0.0.0:26\"]\n  remoteIPRanges: [\"10.0.0.1\", \"10.0.1.0/24\"]\n"
          "  authMechanisms: [ExternalAuthoritative]\n  permissionGroups: [ExchangeServers]\n"));
  EXPECT_THAT(warningReasons(r, "trusted"), UnorderedElementsAre("ExternalAuthoritativeWideRange"));
  EXPECT_THAT(warningReasons(r, "peers"), IsEmpty());
}

TEST(Analyzer, OverlapsAndDuplicatesOnOneBinding) {
  auto r =
      compileYaml(connector("a",
                            "  bindings: [\"0.0.0.0:25\"]\n  remoteIPRanges: "
                            "[\"10.0.0.0-10.0.0.100\"]\n  permissionGroups: [AnonymousUsers]\n") +
                  connector("b",
                            "  bindings: [\"0.0.0.0:25\"]\n  remoteIPRanges: "
                            "[\"10.0.0.50-10.0.0.200\"]\n  permissionGroups: [AnonymousUsers]\n") +
                  connector("c",
                            "  bindings: [\"0.0.0.0:25\"]\n  remoteIPRanges: "
                            "[\"10.0.0.0-10.0.0.100\"]\n  permissionGroups: [AnonymousUsers]\n") +
                  connector("nested",
                            "  bindings: [\"0.0.0.0:25\"]\n  remoteIPRanges: [\"10.0.0.60\"]\n  "
                            "permissionGroups: [AnonymousUsers]\n"));
  EXPECT_THAT(warningReasons(r, "b"), UnorderedElementsAre("PartiallyOverlappingRanges"));
  EXPECT_THAT(warningReasons(r, "c"), UnorderedElementsAre("DuplicateConnector"));
  EXPECT_THAT(warningReasons(r, "nested"), IsEmpty());
}

TEST(Analyzer, ConnectorNobodyCanUse) {
  auto r = compileYaml(
      connector("custom", "  bindings: [\"0.0.0.0:25\"]\n  permissionGroups: [Custom]\n"));
  EXPECT_THAT(warningReasons(r, "custom"), UnorderedElementsAre("NoSubmitRight"));
}

}  // namespace
}  // namespace kuberelay::policy
