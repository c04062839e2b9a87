// PolicyDistributor: per-pool snapshots, rollout counts, propagation, without gRPC.
#include <gtest/gtest.h>

#include "distribution.h"
#include "reconciler.h"

namespace kuberelay::op {
namespace {

Json connector(const std::string& name, const std::string& pool, const std::string& tlsSecret) {
  Json spec = {{"bindings", {"0.0.0.0:25"}},
               {"relayPool", pool},
               {"permissionGroups", {"AnonymousUsers"}},
               {"forwarding", {{"smarthosts", {"127.0.0.1:2526"}}}}};
  if (!tlsSecret.empty()) {
    spec["authMechanisms"] = {"Tls"};
    spec["tls"] = {{"secretName", tlsSecret}};
  }
  return {{"apiVersion", "smtp.kuberelay.io/v1alpha1"},
          {"kind", "ReceiveConnector"},
          {"metadata", {{"name", name}, {"namespace", "mail"}, {"generation", 3}}},
          {"spec", spec}};
}

Json permission(const std::string& name, const std::string& connectorName) {
  return {{"apiVersion", "smtp.kuberelay.io/v1alpha1"},
          {"kind", "SenderPermission"},
          {"metadata", {{"name", name}, {"namespace", "mail"}, {"generation", 1}}},
          {"spec",
           {{"connector", connectorName},
            {"principal", "Anonymous"},
            {"extendedRights", {"AcceptAnyRecipient"}}}}};
}

Json secret(const std::string& name) {
  return {{"apiVersion", "v1"},
          {"kind", "Secret"},
          {"metadata", {{"name", name}, {"namespace", "mail"}}},
          {"type", "kubernetes.io/tls"},
          {"stringData",
           {{"tls.crt", "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n"},
            {"tls.key", "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n"}}}};
}

struct Published {
  std::shared_ptr<policy::ResourceSet> set = std::make_shared<policy::ResourceSet>();
  std::shared_ptr<std::vector<PolicySourceObject>> objects =
      std::make_shared<std::vector<PolicySourceObject>>();
  void add(const Json& object) {
    Json slim = slimObject(object);
    const Json& md = object["metadata"];
    objects->push_back(
        {object["kind"], md["namespace"], md["name"], md.value("generation", 0), slim.dump()});
    decodeSlimObject(slim.dump(), md["namespace"], *set);
  }
};

Published twoPools() {
  Published p;
  p.add(connector("edge", "edge", "edge-tls"));
  p.add(connector("internal", "default", "internal-tls"));
  p.add(permission("edge-relay", "edge"));
  p.add(permission("internal-relay", "internal"));
  p.add(secret("edge-tls"));
  p.add(secret("internal-tls"));
  return p;
}

std::vector<std::string> names(const PoolSnapshot& s) {
  std::vector<std::string> out;
  for (const auto* o : s.objects) out.push_back(o->kind + "/" + o->name);
  return out;
}

TEST(PolicyDistributor, APoolGetsOnlyItsObjectsAndSecrets) {
  PolicyDistributor d;
  EXPECT_EQ(d.snapshot("edge"), nullptr);  // nothing published yet
  Published p = twoPools();
  d.publish(p.set, p.objects, std::chrono::steady_clock::now());
  auto edge = d.snapshot("edge");
  ASSERT_NE(edge, nullptr);
  EXPECT_EQ(names(*edge),
            (std::vector<std::string>{"ReceiveConnector/edge", "SenderPermission/edge-relay",
                                      "Secret/edge-tls"}));
  auto internal = d.snapshot("default");
  EXPECT_EQ(names(*internal),
            (std::vector<std::string>{"ReceiveConnector/internal",
                                      "SenderPermission/internal-relay", "Secret/internal-tls"}));
  EXPECT_NE(edge->version, internal->version);
  EXPECT_EQ(d.snapshot("edge"), edge);  // cut once per publish

  // The relay decodes the shipped manifests and compiles for its pool: the same version.
  policy::ResourceSet relaySide;
  for (const auto* o : edge->objects) decodeSlimObject(o->manifest, o->ns, relaySide);
  EXPECT_EQ(policy::compile(relaySide, {"edge", true}).snapshot->version(), edge->version);
}

TEST(PolicyDistributor, RolloutCountsAcksAndNacksOfTheCurrentVersion) {
  PolicyDistributor d;
  int changes = 0;
  d.onRolloutChange([&] { ++changes; });
  Published p = twoPools();
  const uint64_t e1 = d.publish(p.set, p.objects, std::chrono::steady_clock::now());
  const std::string v = d.snapshot("edge")->version;
  EXPECT_EQ(d.rollout("edge", e1).total, 0u);

  uint64_t a = d.connect("relay-a", "edge", "");
  uint64_t b = d.connect("relay-b", "edge", "sha256:old");
  uint64_t c = d.connect("relay-c", "default", "");
  Rollout r = d.rollout("edge", e1);
  EXPECT_EQ(r.total, 2u);
  EXPECT_EQ(r.applied, 0u);

  d.acked(a, v);
  d.nacked(b, v, "ReceiveConnector mail/edge: tls.key does not match tls.crt");
  r = d.rollout("edge", e1);
  EXPECT_EQ(r.applied, 1u);
  EXPECT_EQ(r.rejected, 1u);
  EXPECT_NE(r.error.find("relay-b: ReceiveConnector mail/edge"), std::string::npos);
  EXPECT_EQ(d.rollout("", e1).total, 3u);  // every pool (AcceptedDomains)

  // A change in another pool: relay-a still runs everything its pool's objects need.
  Published q = twoPools();
  q.add(permission("internal-relay-2", "internal"));
  const uint64_t e2 = d.publish(q.set, q.objects, std::chrono::steady_clock::now());
  EXPECT_EQ(d.snapshot("edge")->version, v);
  EXPECT_EQ(d.rollout("edge", e1).applied, 1u);
  EXPECT_EQ(d.rollout("default", e2).applied, 0u);  // relay-c has not applied it yet
  d.acked(c, d.snapshot("default")->version);
  EXPECT_EQ(d.rollout("default", e2).applied, 1u);

  d.disconnect(b);
  EXPECT_EQ(d.rollout("edge", e1).total, 1u);
  EXPECT_EQ(d.rollout("edge", e1).applied, 1u);
  d.disconnect(c);
  EXPECT_GE(changes, 7);
}

class RecordingObserver : public DistributionObserver {
public:
  void propagated(const std::string& pool, double seconds) override {
    pools.push_back(pool);
    last = seconds;
  }
  std::vector<std::string> pools;
  double last = -1;
};

TEST(PolicyDistributor, PropagationIsObservedWhenTheLastRelayOfThePoolAcks) {
  RecordingObserver obs;
  PolicyDistributor d(&obs);
  Published p = twoPools();
  d.publish(p.set, p.objects, std::chrono::steady_clock::now() - std::chrono::milliseconds(200));
  const std::string v = d.snapshot("edge")->version;
  uint64_t a = d.connect("relay-a", "edge", "");
  uint64_t b = d.connect("relay-b", "edge", "");
  d.acked(a, v);
  EXPECT_TRUE(obs.pools.empty());
  d.acked(b, v);
  ASSERT_EQ(obs.pools, std::vector<std::string>{"edge"});
  EXPECT_GE(obs.last, 0.2);
  d.acked(b, v);  // once per publish
  EXPECT_EQ(obs.pools.size(), 1u);
}

TEST(PolicyDistributor, WaitForPublishWakesOnANewPolicy) {
  PolicyDistributor d;
  Published p = twoPools();
  EXPECT_EQ(d.waitForPublish(0, std::chrono::milliseconds(10)), 0u);
  d.publish(p.set, p.objects, std::chrono::steady_clock::now());
  EXPECT_EQ(d.waitForPublish(0, std::chrono::seconds(5)), 1u);
}

}  // namespace
}  // namespace kuberelay::op
