// LeaderElector against a scripted Lease store (resourceVersion-checked PUTs, like the API).
#include <gtest/gtest.h>

#include "fake_kube_api.h"
#include "leader.h"

namespace kuberelay::op {
namespace {

using testing::FakeKubeApi;

struct LeaseStore {
  std::optional<Json> lease;
  int rv = 0;
  void attach(FakeKubeApi& api) {
    api.onGet = [this](const std::string&) {
      ApiResult r;
      r.status = lease ? 200 : 404;
      if (lease) r.body = *lease;
      return r;
    };
    api.onCreate = [this](const std::string&, const Json& o) {
      ApiResult r;
      if (lease) {
        r.status = 409;
        return r;
      }
      lease = o;
      (*lease)["metadata"]["resourceVersion"] = std::to_string(++rv);
      r.status = 201;
      r.body = *lease;
      return r;
    };
    api.onReplace = [this](const std::string&, const Json& o) {
      ApiResult r;
      if (!lease || o["metadata"].value("resourceVersion", "") != std::to_string(rv)) {
        r.status = 409;
        return r;
      }
      lease = o;
      (*lease)["metadata"]["resourceVersion"] = std::to_string(++rv);
      r.status = 200;
      r.body = *lease;
      return r;
    };
  }
  std::string holder() const { return lease ? (*lease)["spec"].value("holderIdentity", "") : ""; }
};

struct Clock {
  std::chrono::steady_clock::time_point t{};
  std::chrono::steady_clock::time_point operator()() const { return t; }
};

LeaderOptions options(const std::string& id, Clock* clock) {
  LeaderOptions o;
  o.identity = id;
  o.leaseDuration = std::chrono::seconds(15);
  o.renewDeadline = std::chrono::seconds(10);
  o.clock = [clock] { return (*clock)(); };
  return o;
}

TEST(LeaderElector, OneOfTwoLeadsAndTheOtherTakesOverAfterTheLeaseExpires) {
  LeaseStore store;
  FakeKubeApi apiA, apiB;
  store.attach(apiA);
  store.attach(apiB);
  Clock clock;
  std::vector<bool> changesA;
  LeaderElector a(apiA, options("a", &clock), [&](bool l) { changesA.push_back(l); });
  LeaderElector b(apiB, options("b", &clock));
  EXPECT_TRUE(a.step());  // creates the Lease
  EXPECT_FALSE(b.step());
  EXPECT_EQ(store.holder(), "a");
  EXPECT_EQ((*store.lease)["spec"]["leaseTransitions"], 0);

  clock.t += std::chrono::seconds(5);
  EXPECT_TRUE(a.step());  // renews
  EXPECT_FALSE(b.step());
  // a stops renewing (killed): b waits a full lease duration from the last change it saw.
  clock.t += std::chrono::seconds(14);
  EXPECT_FALSE(b.step());
  clock.t += std::chrono::seconds(2);
  EXPECT_TRUE(b.step());
  EXPECT_EQ(store.holder(), "b");
  EXPECT_EQ((*store.lease)["spec"]["leaseTransitions"], 1);
  // a comes back: it sees b's fresh record and steps down once its renew deadline has passed.
  EXPECT_FALSE(a.step());
  EXPECT_EQ(changesA, (std::vector<bool>{true, false}));
}

TEST(LeaderElector, AReleasedLeaseIsTakenAtOnce) {
  LeaseStore store;
  FakeKubeApi apiA, apiB;
  store.attach(apiA);
  store.attach(apiB);
  Clock clock;
  LeaderElector a(apiA, options("a", &clock));
  LeaderElector b(apiB, options("b", &clock));
  ASSERT_TRUE(a.step());
  EXPECT_FALSE(b.step());
  a.release();
  EXPECT_FALSE(a.isLeader());
  EXPECT_EQ(store.holder(), "");
  EXPECT_TRUE(b.step());  // no waiting for the lease duration
  EXPECT_EQ(store.holder(), "b");
}

TEST(LeaderElector, TwoCandidatesCannotBothWinTheSameRecord) {
  LeaseStore store;
  FakeKubeApi apiA, apiB;
  store.attach(apiA);
  store.attach(apiB);
  Clock clock;
  LeaderElector a(apiA, options("a", &clock));
  ASSERT_TRUE(a.step());
  a.release();
  // b read the released record, then a re-took it before b's PUT: b's PUT is a conflict.
  LeaderElector b(apiB, options("b", &clock));
  auto get = apiB.onGet;
  apiB.onGet = [&](const std::string& p) {
    ApiResult r = get(p);
    EXPECT_TRUE(a.step());
    return r;
  };
  EXPECT_FALSE(b.step());
  EXPECT_EQ(store.holder(), "a");
}

TEST(LeaderElector, MicroTimeIsRfc3339WithMicroseconds) {
  auto t = std::chrono::system_clock::time_point(std::chrono::microseconds(1700000000123456));
  EXPECT_EQ(microTime(t), "2023-11-14T22:13:20.123456Z");
}

}  // namespace
}  // namespace kuberelay::op
