// The reconciler: API objects (as the informers cache them) -> compiled policy -> each object's
// desired status; written only when it differs; 409 Conflict retried.
#include "reconciler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>

#include "fake_kube_api.h"

namespace kuberelay::op {
namespace {

using testing::FakeKubeApi;
using ::testing::HasSubstr;
using ::testing::Not;

std::string base64(const std::string& in) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += t[(v >> s) & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    out += t[(v >> 18) & 63];
    out += t[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += t[(v >> 18) & 63];
    out += t[(v >> 12) & 63];
    out += t[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

Json meta(const std::string& ns, const std::string& name, int64_t generation = 1) {
  return {{"namespace", ns},
          {"name", name},
          {"generation", generation},
          {"uid", "uid-" + ns + "-" + name},
          {"resourceVersion", "100"}};
}

Json connector(const std::string& ns, const std::string& name, Json spec, int64_t generation = 1) {
  return {{"apiVersion", "smtp.kuberelay.io/v1alpha1"},
          {"kind", "ReceiveConnector"},
          {"metadata", meta(ns, name, generation)},
          {"spec", std::move(spec)}};
}

Json anonymousRelay(std::string range = "127.0.0.16/29") {
  return {{"bindings", {"0.0.0.0:2525"}},
          {"remoteIPRanges", {std::move(range)}},
          {"authMechanisms", {"Tls"}},
          {"permissionGroups", {"AnonymousUsers"}},
          {"tls", {{"secretName", "relay-tls"}}},
          {"forwarding", {{"smarthosts", {"127.0.0.1:2526"}}, {"tls", "Opportunistic"}}}};
}

Json permission(const std::string& ns, const std::string& name, const std::string& connectorName) {
  return {{"apiVersion", "smtp.kuberelay.io/v1alpha1"},
          {"kind", "SenderPermission"},
          {"metadata", meta(ns, name)},
          {"spec",
           {{"connector", connectorName},
            {"principal", "Anonymous"},
            {"extendedRights", {"Ms-Exch-SMTP-Accept-Any-Recipient"}}}}};
}

Json domain(const std::string& ns, const std::string& name, const std::string& domainName) {
  return {{"apiVersion", "smtp.kuberelay.io/v1alpha1"},
          {"kind", "AcceptedDomain"},
          {"metadata", meta(ns, name)},
          {"spec", {{"domainName", domainName}, {"domainType", "Authoritative"}}}};
}

Json tlsSecret(const std::string& ns, const std::string& name) {
  return {
      {"apiVersion", "v1"},
      {"kind", "Secret"},
      {"metadata", meta(ns, name)},
      {"type", "kubernetes.io/tls"},
      {"data",
       {{"tls.crt", base64("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")},
        {"tls.key", base64("-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n")}}}};
}

Kind kindOf(const Json& o) {
  std::string k = o["kind"];
  return k == "ReceiveConnector"   ? Kind::ReceiveConnector
         : k == "SenderPermission" ? Kind::SenderPermission
                                   : Kind::AcceptedDomain;
}

struct Compiled {
  policy::ResourceSet set;
  policy::CompileResult result;
  std::map<ObjectId, ObjectStatus> desired;
};

Compiled compileAll(const std::vector<Json>& objects) {
  Compiled c;
  std::vector<ObservedObject> observed;
  for (const auto& o : objects) {
    decodeObject(o, c.set);
    if (o["kind"] != "Secret") observed.push_back(observe(kindOf(o), o));
  }
  c.result = policy::compile(c.set);
  c.desired = desiredStatuses(observed, c.set, c.result);
  return c;
}

const Condition* find(const ObjectStatus& s, const std::string& type) {
  for (const auto& c : s.conditions) {
    if (c.type == type) return &c;
  }
  return nullptr;
}

ObjectId id(Kind kind, const std::string& ns, const std::string& name) { return {kind, ns, name}; }

std::vector<Json> seed003() {
  Json secured = anonymousRelay("127.0.0.24/29");
  secured["authMechanisms"] = {"Tls", "ExternalAuthoritative"};
  secured["permissionGroups"] = {"ExchangeServers"};
  return {connector("mail", "anonymous-relay", anonymousRelay()),
          connector("mail", "externally-secured-relay", secured),
          permission("mail", "anonymous-relay-accept-any-recipient", "anonymous-relay"),
          domain("mail", "example-com", "example.com"), tlsSecret("mail", "relay-tls")};
}

TEST(DesiredStatus, ValidObjectsAreAcceptedAndCarryThePolicyVersion) {
  auto c = compileAll(seed003());
  ASSERT_EQ(c.desired.size(), 4u);
  const std::string version = c.result.snapshot->version();
  EXPECT_THAT(version, ::testing::StartsWith("sha256:"));
  for (const auto& [oid, st] : c.desired) {
    SCOPED_TRACE(oid.toString());
    EXPECT_TRUE(st.accepted);
    EXPECT_EQ(st.observedGeneration, 1);
    EXPECT_EQ(st.policyVersion, version);
    ASSERT_GE(st.conditions.size(), 2u);
    EXPECT_EQ(st.conditions[0].type, "Accepted");
    EXPECT_EQ(st.conditions[0].status, "True");
    EXPECT_EQ(st.conditions[0].reason, "Compiled");
    EXPECT_THAT(st.conditions[0].message, HasSubstr(version));
    EXPECT_EQ(st.conditions[1].type, "Ready");
    EXPECT_EQ(st.conditions[1].status, "Unknown");
    EXPECT_EQ(st.conditions[1].reason, "NoRelays");
    EXPECT_EQ(st.conditions.size(), 2u) << st.conditions.back().type;
  }
}

TEST(DesiredStatus, IsDeterministicWhateverTheOrderOfTheObjects) {
  auto objects = seed003();
  auto a = compileAll(objects);
  std::reverse(objects.begin(), objects.end());
  auto b = compileAll(objects);
  EXPECT_EQ(a.result.snapshot->version(), b.result.snapshot->version());
  ASSERT_EQ(a.desired.size(), b.desired.size());
  for (const auto& [oid, st] : a.desired) {
    auto other = statusUpdate(Json(), b.desired.at(oid), "t", true);
    EXPECT_EQ(statusUpdate(Json(), st, "t", true), other) << oid.toString();
  }
}

TEST(DesiredStatus, ADanglingReferenceRejectsOnlyThatObjectWithTheFieldPath) {
  auto objects = seed003();
  objects.push_back(permission("mail", "dangling", "does-not-exist"));
  auto c = compileAll(objects);
  const auto& bad = c.desired.at(id(Kind::SenderPermission, "mail", "dangling"));
  EXPECT_FALSE(bad.accepted);
  const Condition* accepted = find(bad, "Accepted");
  ASSERT_TRUE(accepted);
  EXPECT_EQ(accepted->status, "False");
  EXPECT_EQ(accepted->reason, "InvalidReference");
  EXPECT_THAT(accepted->message, HasSubstr("spec.connector: "));
  EXPECT_THAT(accepted->message, HasSubstr("does-not-exist"));
  for (const auto& [oid, st] : c.desired) {
    if (oid.name != "dangling") {
      EXPECT_TRUE(st.accepted) << oid.toString();
    }
  }
}

TEST(DesiredStatus, AMissingTlsSecretQuarantinesTheConnector) {
  std::vector<Json> objects = {connector("mail", "anonymous-relay", anonymousRelay()),
                               domain("mail", "example-com", "example.com")};
  auto c = compileAll(objects);
  const auto& st = c.desired.at(id(Kind::ReceiveConnector, "mail", "anonymous-relay"));
  EXPECT_FALSE(st.accepted);
  const Condition* accepted = find(st, "Accepted");
  ASSERT_TRUE(accepted);
  EXPECT_THAT(accepted->message, HasSubstr("spec.tls.secretName: Secret \"relay-tls\" not found"));
  EXPECT_THAT(accepted->message, HasSubstr("421 4.3.5"));
  EXPECT_TRUE(c.desired.at(id(Kind::AcceptedDomain, "mail", "example-com")).accepted);
}

TEST(DesiredStatus, AnInvalidFieldNamesItsPath) {
  Json spec = anonymousRelay();
  spec["remoteIPRanges"] = {"10.0.0.300"};
  auto c = compileAll({connector("mail", "typo", spec), tlsSecret("mail", "relay-tls")});
  const Condition* accepted =
      find(c.desired.at(id(Kind::ReceiveConnector, "mail", "typo")), "Accepted");
  ASSERT_TRUE(accepted);
  EXPECT_EQ(accepted->status, "False");
  EXPECT_THAT(accepted->message, HasSubstr("spec.remoteIPRanges[0]"));
}

TEST(DesiredStatus, AnalyzerWarningsBecomeOneConditionPerReason) {
  Json submission = anonymousRelay("0.0.0.0/0");
  submission["bindings"] = {"0.0.0.0:2587"};
  submission["authMechanisms"] = {"Tls", "BasicAuth"};
  submission["permissionGroups"] = {"ExchangeUsers", "AnonymousUsers"};
  submission["users"] = {{"secretName", "relay-users"}};
  Json users = {{"apiVersion", "v1"},
                {"kind", "Secret"},
                {"metadata", meta("mail", "relay-users")},
                {"type", "Opaque"},
                {"data", {{"users", base64("alice:$6$salt$hash\nbroken line\n")}}}};
  auto c = compileAll(
      {connector("mail", "client-submission", submission), tlsSecret("mail", "relay-tls"), users});
  const auto& st = c.desired.at(id(Kind::ReceiveConnector, "mail", "client-submission"));
  EXPECT_TRUE(st.accepted);
  for (const char* type : {"AnonymousOnSubmissionConnector", "BasicAuthWithoutTls"}) {
    const Condition* w = find(st, type);
    ASSERT_TRUE(w) << type;
    EXPECT_EQ(w->status, "True");
    EXPECT_EQ(w->reason, type);
    EXPECT_THAT(w->message, HasSubstr("spec."));
  }
  // A bad line of the users Secret is reported on the connector that uses it.
  const Condition* users_ = find(st, "InvalidUsers");
  ASSERT_TRUE(users_);
  EXPECT_THAT(users_->message, HasSubstr("Secret relay-users: data.users: line 2"));
  EXPECT_GE(st.warnings, 3u);
}

TEST(StatusUpdate, WritesOnlyWhatDiffersAndKeepsTransitionTimes) {
  auto c = compileAll(seed003());
  const auto& want = c.desired.at(id(Kind::ReceiveConnector, "mail", "anonymous-relay"));
  auto first = statusUpdate(Json(), want, "2025-01-01T00:00:00Z", true);
  ASSERT_TRUE(first);
  EXPECT_EQ((*first)["observedGeneration"], 1);
  EXPECT_EQ((*first)["policyVersion"], want.policyVersion);
  EXPECT_EQ((*first)["conditions"][0]["lastTransitionTime"], "2025-01-01T00:00:00Z");
  EXPECT_EQ((*first)["conditions"][0]["observedGeneration"], 1);

  // The same again (later): nothing to write, whatever the time.
  EXPECT_FALSE(statusUpdate(*first, want, "2025-02-02T00:00:00Z", true));
  // Extra fields in the current status (relays, written by someone else) do not matter.
  Json withRelays = *first;
  withRelays["relays"] = {{"total", 3}, {"applied", 3}};
  EXPECT_FALSE(statusUpdate(withRelays, want, "2025-02-02T00:00:00Z", true));
  // Without the policyVersion field (SenderPermission, AcceptedDomain), it is neither written
  // nor compared.
  auto noVersion = statusUpdate(Json(), want, "t0", false);
  ASSERT_TRUE(noVersion);
  EXPECT_FALSE(noVersion->contains("policyVersion"));
  EXPECT_FALSE(statusUpdate(*noVersion, want, "t1", false));

  // A new generation: everything is rewritten, a condition whose status stays keeps its time.
  ObjectStatus next = want;
  next.observedGeneration = 2;
  for (auto& cond : next.conditions) cond.observedGeneration = 2;
  next.conditions[0].message = "compiled into policy sha256:0000000000000000";
  next.policyVersion = "sha256:0000000000000000";
  auto second = statusUpdate(*first, next, "2025-03-03T00:00:00Z", true);
  ASSERT_TRUE(second);
  EXPECT_EQ((*second)["observedGeneration"], 2);
  EXPECT_EQ((*second)["policyVersion"], "sha256:0000000000000000");
  EXPECT_EQ((*second)["conditions"][0]["lastTransitionTime"], "2025-01-01T00:00:00Z");

  // Accepted flips to False: its time moves, Ready's does not.
  ObjectStatus rejected = next;
  rejected.conditions[0].status = "False";
  rejected.conditions[0].reason = "InvalidSpec";
  auto third = statusUpdate(*second, rejected, "2025-04-04T00:00:00Z", true);
  ASSERT_TRUE(third);
  EXPECT_EQ((*third)["conditions"][0]["lastTransitionTime"], "2025-04-04T00:00:00Z");
  EXPECT_EQ((*third)["conditions"][1]["lastTransitionTime"], "2025-01-01T00:00:00Z");

  // A condition that went away is dropped.
  ObjectStatus warned = next;
  warned.conditions.push_back({"OpenRelay", "True", "OpenRelay", "anyone", 2, ""});
  auto withWarning = statusUpdate(*second, warned, "t", true);
  ASSERT_TRUE(withWarning);
  EXPECT_EQ((*withWarning)["conditions"].size(), 3u);
  auto without = statusUpdate(*withWarning, next, "t", true);
  ASSERT_TRUE(without);
  EXPECT_EQ((*without)["conditions"].size(), 2u);
}

TEST(NewProblems, ReportsRejectionsAndWarningsOnce) {
  ObjectStatus st;
  st.observedGeneration = 1;
  st.conditions = {{"Accepted", "False", "InvalidReference", "spec.connector: ...", 1, ""},
                   {"Ready", "Unknown", "NoRelays", "", 1, ""},
                   {"OpenRelay", "True", "OpenRelay", "...", 1, ""}};
  EXPECT_EQ(newProblems(Json(), st).size(), 2u);
  auto written = statusUpdate(Json(), st, "t", true);
  ASSERT_TRUE(written);
  EXPECT_TRUE(newProblems(*written, st).empty());
}

// ------------------------------------------------------------------------- the write loop

class VectorSource : public ObjectSource {
public:
  std::vector<Json> items;
  bool isSynced = true;
  std::vector<std::shared_ptr<const Json>> objects(const std::string& kind) const override {
    std::vector<std::shared_ptr<const Json>> out;
    for (const auto& o : items) {
      if (o["kind"] == kind) out.push_back(std::make_shared<const Json>(o));
    }
    return out;
  }
  bool synced() const override { return isSynced; }
  // What the watch would bring after a status write.
  void apply(const FakeKubeApi::PatchCall& p, const std::string& newRv) {
    for (auto& o : items) {
      std::string path =
          resourceOf(kindOf(o)).objectPath(o["metadata"]["namespace"], o["metadata"]["name"]);
      if (o["kind"] != "Secret" && path == p.path) {
        o["status"] = p.status;
        o["metadata"]["resourceVersion"] = newRv;
      }
    }
  }
};

ReconcilerOptions fixedClock() {
  ReconcilerOptions o;
  o.now = [] { return std::chrono::system_clock::time_point(std::chrono::seconds(1700000000)); };
  o.instance = "test";
  return o;
}

TEST(Reconciler, WritesEachStatusOnceAndThenNothing) {
  FakeKubeApi api;
  VectorSource source;
  source.items = seed003();
  Reconciler r(api, source, fixedClock());

  auto first = r.reconcileOnce();
  EXPECT_TRUE(first.ran);
  EXPECT_TRUE(first.compiledAgain);
  EXPECT_EQ(first.updated, 4u);
  ASSERT_EQ(api.patches.size(), 4u);
  for (const auto& p : api.patches) {
    EXPECT_EQ(p.resourceVersion, "100");  // the precondition
    EXPECT_EQ(p.status["conditions"][0]["lastTransitionTime"], "2023-11-14T22:13:20Z");
    bool isConnector = p.path.find("/receiveconnectors/") != std::string::npos;
    EXPECT_EQ(p.status.contains("policyVersion"), isConnector) << p.path;
  }
  EXPECT_EQ(api.patches[0].path,
            "/apis/smtp.kuberelay.io/v1alpha1/namespaces/mail/receiveconnectors/anonymous-relay");
  EXPECT_TRUE(api.events.empty());
  EXPECT_EQ(r.policyVersion(), first.policyVersion);

  // The cache has not seen the writes yet: our own writes are remembered, nothing is rewritten.
  auto second = r.reconcileOnce();
  EXPECT_FALSE(second.compiledAgain);
  EXPECT_EQ(second.updated, 0u);
  EXPECT_EQ(api.patches.size(), 4u);

  // The watch delivered them: still nothing to write.
  int rv = 200;
  for (const auto& p : api.patches) source.apply(p, std::to_string(rv++));
  auto third = r.reconcileOnce();
  EXPECT_EQ(third.updated, 0u);
  EXPECT_EQ(third.unchanged, 4u);
  EXPECT_EQ(api.patches.size(), 4u);
}

// status.policyVersion is the first policy that contains the object's generation: a change
// elsewhere compiles a new policy but rewrites no unchanged object's status (at 10,000 objects,
// rewriting them all on every change would keep the operator busy for minutes).
TEST(Reconciler, AChangeElsewhereDoesNotRewriteTheOthers) {
  FakeKubeApi api;
  VectorSource source;
  source.items = seed003();
  Reconciler r(api, source, fixedClock());
  auto first = r.reconcileOnce();
  int rv = 200;
  for (const auto& p : api.patches) source.apply(p, std::to_string(rv++));
  api.patches.clear();

  source.items.erase(std::remove_if(source.items.begin(), source.items.end(),
                                    [](const Json& o) { return o["kind"] == "AcceptedDomain"; }),
                     source.items.end());
  auto second = r.reconcileOnce();
  EXPECT_TRUE(second.compiledAgain);
  EXPECT_NE(second.policyVersion, first.policyVersion);
  EXPECT_EQ(second.updated, 0u);
  EXPECT_TRUE(api.patches.empty());

  // The changed object reports the new policy; the others keep theirs.
  for (auto& o : source.items) {
    if (o["kind"] != "ReceiveConnector") continue;
    o["metadata"]["generation"] = 2;
    o["spec"]["fqdn"] = "changed.example.com";
    break;
  }
  auto third = r.reconcileOnce();
  ASSERT_EQ(api.patches.size(), 1u);
  EXPECT_EQ(api.patches[0].status["policyVersion"], third.policyVersion);
  EXPECT_THAT(api.patches[0].status["conditions"][0]["message"].get<std::string>(),
              HasSubstr(third.policyVersion));
}

TEST(Reconciler, RetriesAConflictOnTheFreshObject) {
  FakeKubeApi api;
  VectorSource source;
  source.items = {domain("mail", "example-com", "example.com")};
  Json fresh = source.items[0];
  fresh["metadata"]["resourceVersion"] = "150";
  fresh["status"] = {{"observedGeneration", 0}};
  api.onPatch = [](const FakeKubeApi::PatchCall& p) {
    ApiResult r;
    r.status = p.resourceVersion == "100" ? 409 : 200;
    return r;
  };
  api.onGet = [&](const std::string&) {
    ApiResult r;
    r.status = 200;
    r.body = fresh;
    return r;
  };
  Reconciler r(api, source, fixedClock());
  auto pass = r.reconcileOnce();
  EXPECT_EQ(pass.updated, 1u);
  ASSERT_EQ(api.patches.size(), 2u);
  EXPECT_EQ(api.patches[0].resourceVersion, "100");
  EXPECT_EQ(api.patches[1].resourceVersion, "150");
  EXPECT_EQ(api.gets.size(), 1u);
}

TEST(Reconciler, AConflictWithANewGenerationIsLeftToTheNextPass) {
  FakeKubeApi api;
  VectorSource source;
  source.items = {domain("mail", "example-com", "example.com")};
  Json fresh = source.items[0];
  fresh["metadata"]["generation"] = 2;
  api.onPatch = [](const FakeKubeApi::PatchCall&) {
    ApiResult r;
    r.status = 409;
    return r;
  };
  api.onGet = [&](const std::string&) {
    ApiResult r;
    r.status = 200;
    r.body = fresh;
    return r;
  };
  Reconciler r(api, source, fixedClock());
  auto pass = r.reconcileOnce();
  EXPECT_EQ(pass.conflicts, 1u);
  EXPECT_EQ(api.patches.size(), 1u);
}

TEST(Reconciler, RejectionsAndWarningsAreReportedAsEvents) {
  FakeKubeApi api;
  VectorSource source;
  source.items = seed003();
  source.items.push_back(permission("mail", "dangling", "does-not-exist"));
  Reconciler r(api, source, fixedClock());
  r.reconcileOnce();
  ASSERT_EQ(api.events.size(), 1u);
  const Json& e = api.events[0].second;
  EXPECT_EQ(api.events[0].first, "mail");
  EXPECT_EQ(e["type"], "Warning");
  EXPECT_EQ(e["reason"], "InvalidReference");
  EXPECT_EQ(e["involvedObject"]["kind"], "SenderPermission");
  EXPECT_EQ(e["involvedObject"]["name"], "dangling");
  EXPECT_EQ(e["involvedObject"]["uid"], "uid-mail-dangling");
  EXPECT_THAT(e["message"].get<std::string>(), HasSubstr("spec.connector"));
  r.reconcileOnce();
  EXPECT_EQ(api.events.size(), 1u) << "not repeated while nothing changes";
}

TEST(Reconciler, WaitsForTheCachesToSync) {
  FakeKubeApi api;
  VectorSource source;
  source.items = seed003();
  source.isSynced = false;
  Reconciler r(api, source, fixedClock());
  EXPECT_FALSE(r.reconcileOnce().ran);
  EXPECT_TRUE(api.patches.empty());
  EXPECT_FALSE(r.firstPassDone());
}

TEST(Reconciler, OnlyReferencedSecretsAreDecoded) {
  policy::ResourceSet set;
  decodeObject(connector("mail", "anonymous-relay", anonymousRelay()), set);
  EXPECT_EQ(referencedSecrets(set), std::vector<std::string>{"mail/relay-tls"});
}

TEST(Rfc3339, IsUtcWithSeconds) {
  EXPECT_EQ(rfc3339(std::chrono::system_clock::time_point(std::chrono::seconds(0))),
            "1970-01-01T00:00:00Z");
}

}  // namespace
}  // namespace kuberelay::op
