// readPolicyObjects: what `kuberelay-policy explain --cluster` compiles, against a scripted API.
#include <gtest/gtest.h>

#include "cluster_read.h"
#include "fake_kube_api.h"
#include "kuberelay/policy/compiler.h"

namespace kuberelay::op {
namespace {

using testing::FakeKubeApi;

Json connector(const std::string& name, const std::string& tlsSecret) {
  return {{"metadata", {{"name", name}, {"namespace", "mail"}, {"generation", 1}}},
          {"spec",
           {{"bindings", {"0.0.0.0:25"}},
            {"authMechanisms", {"Tls"}},
            {"permissionGroups", {"AnonymousUsers"}},
            {"tls", {{"secretName", tlsSecret}}},
            {"forwarding", {{"smarthosts", {"127.0.0.1:2526"}}}}}}};
}

TEST(ClusterRead, FollowsPagesAndReadsReferencedSecrets) {
  FakeKubeApi api;
  // Connectors in two pages, then no permissions, then no domains.
  api.listResponses.push_back(FakeKubeApi::page({connector("a", "tls-a")}, "10", "next-page"));
  api.listResponses.push_back(FakeKubeApi::page({connector("b", "tls-missing")}, "10"));
  api.listResponses.push_back(FakeKubeApi::page({}, "10"));
  api.listResponses.push_back(FakeKubeApi::page({}, "10"));
  api.onGet = [](const std::string& path) {
    ApiResult r;
    if (path == "/api/v1/namespaces/mail/secrets/tls-a") {
      r.status = 200;
      r.body = {{"metadata", {{"name", "tls-a"}, {"namespace", "mail"}}},
                {"type", "kubernetes.io/tls"},
                {"stringData", {{"tls.crt", "x"}, {"tls.key", "y"}}}};
    } else {
      r.status = 404;
    }
    return r;
  };
  ClusterRead read = readPolicyObjects(api, {});
  ASSERT_EQ(read.error, "");
  EXPECT_EQ(read.objects, 2u);
  EXPECT_EQ(read.secrets, 1u);  // the missing one is left to the compiler to report
  ASSERT_EQ(api.lists.size(), 4u);
  EXPECT_EQ(api.lists[0].path, "/apis/smtp.kuberelay.io/v1alpha1/receiveconnectors");
  EXPECT_EQ(api.lists[1].options.continueToken, "next-page");
  EXPECT_EQ(api.lists[2].path, "/apis/smtp.kuberelay.io/v1alpha1/senderpermissions");
  ASSERT_EQ(read.set.connectors.size(), 2u);
  EXPECT_EQ(read.set.connectors[0].meta.ns, "mail");
  ASSERT_EQ(read.set.secrets.size(), 1u);
  auto compiled = policy::compile(read.set);
  bool missingReported = false;
  for (const auto& d : compiled.diagnostics) {
    missingReported |= d.object.name == "b" && d.field == "spec.tls.secretName";
  }
  EXPECT_TRUE(missingReported);
}

TEST(ClusterRead, OnlyTheGivenNamespaces) {
  FakeKubeApi api;
  for (int i = 0; i < 6; ++i) api.listResponses.push_back(FakeKubeApi::page({}, "1"));
  ClusterRead read = readPolicyObjects(api, {"mail", "edge"});
  ASSERT_EQ(read.error, "");
  ASSERT_EQ(api.lists.size(), 6u);
  EXPECT_EQ(api.lists[0].path,
            "/apis/smtp.kuberelay.io/v1alpha1/namespaces/mail/receiveconnectors");
  EXPECT_EQ(api.lists[1].path,
            "/apis/smtp.kuberelay.io/v1alpha1/namespaces/edge/receiveconnectors");
}

TEST(ClusterRead, AnApiErrorFailsTheReadWithThePath) {
  FakeKubeApi api;
  api.listResponses.push_back(FakeKubeApi::failedList(403, "Forbidden"));
  ClusterRead read = readPolicyObjects(api, {});
  EXPECT_NE(read.error.find("list /apis/smtp.kuberelay.io/v1alpha1/receiveconnectors: HTTP 403"),
            std::string::npos)
      << read.error;
}

}  // namespace
}  // namespace kuberelay::op
