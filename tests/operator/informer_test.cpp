// The informer's list-then-watch state machine against a scripted KubeApi: pagination,
// resourceVersion hand-over, bookmarks, relist on 410 Gone, jittered exponential backoff.
#include "informer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fake_kube_api.h"

namespace kuberelay::op {
namespace {

using ::testing::ElementsAre;
using testing::event;
using testing::FakeKubeApi;
using testing::object;
using ::testing::Pair;
using ms = std::chrono::milliseconds;

struct Harness {
  FakeKubeApi api;
  Cancellation cancel;
  std::vector<ms> sleeps;
  std::vector<std::pair<std::string, std::string>> changes;
  std::vector<std::string> restarts;

  InformerOptions options() {
    InformerOptions o;
    o.type = resources::kReceiveConnectors;
    return o;
  }

  std::unique_ptr<Informer> make(InformerOptions o) {
    InformerHooks hooks;
    hooks.sleep = [this](ms d) {
      sleeps.push_back(d);
      return true;
    };
    hooks.random = [] { return 0.5; };  // jitter factor exactly 1.0
    auto inf = std::make_unique<Informer>(api, std::move(o), hooks);
    inf->setListener(
        [this](ChangeType t, const std::string& key) { changes.emplace_back(toString(t), key); });
    inf->setRestartListener([this](const char* reason) { restarts.emplace_back(reason); });
    return inf;
  }
};

std::vector<std::string> keys(const Informer& inf) {
  std::vector<std::string> out;
  for (const auto& o : inf.list()) out.push_back(Informer::keyOf(*o));
  return out;
}

TEST(Informer, ListsEveryPageThenWatchesFromTheListVersion) {
  Harness h;
  h.api.listResponses.push_back(
      FakeKubeApi::page({object("mail", "a", "5"), object("mail", "b", "6")}, "10", "token-1"));
  h.api.listResponses.push_back(FakeKubeApi::page({object("web", "c", "7")}, "10"));
  h.api.watchScripts.push_back(
      {{event("ADDED", object("mail", "d", "11")), event("MODIFIED", object("mail", "a", "12")),
        event("DELETED", object("mail", "b", "13")), event("BOOKMARK", object("", "", "15"))},
       WatchEnd::Closed,
       0,
       ""});
  auto inf = h.make(h.options());
  inf->run(h.cancel);

  ASSERT_EQ(h.api.lists.size(), 2u);
  EXPECT_EQ(h.api.lists[0].path, "/apis/smtp.kuberelay.io/v1alpha1/receiveconnectors");
  EXPECT_EQ(h.api.lists[0].options.limit, 500);
  EXPECT_EQ(h.api.lists[0].options.continueToken, "");
  EXPECT_EQ(h.api.lists[0].options.resourceVersion, "");  // a consistent read
  EXPECT_EQ(h.api.lists[1].options.continueToken, "token-1");

  ASSERT_EQ(h.api.watches.size(), 2u);
  EXPECT_EQ(h.api.watches[0].options.resourceVersion, "10");
  EXPECT_TRUE(h.api.watches[0].options.allowWatchBookmarks);
  EXPECT_GE(h.api.watches[0].options.timeoutSeconds, 300);
  EXPECT_LE(h.api.watches[0].options.timeoutSeconds, 600);
  // The bookmark moved the resourceVersion on; a closed watch is resumed from it at once.
  EXPECT_EQ(h.api.watches[1].options.resourceVersion, "15");
  EXPECT_TRUE(h.sleeps.empty());

  EXPECT_TRUE(inf->synced());
  EXPECT_THAT(keys(*inf), ElementsAre("mail/a", "mail/d", "web/c"));
  EXPECT_EQ((*inf->get("mail/a"))["metadata"]["resourceVersion"], "12");
  EXPECT_EQ(inf->resourceVersion(), "15");
  EXPECT_THAT(h.changes,
              ElementsAre(Pair("Added", "mail/a"), Pair("Added", "mail/b"), Pair("Added", "web/c"),
                          Pair("Synced", ""), Pair("Added", "mail/d"), Pair("Updated", "mail/a"),
                          Pair("Deleted", "mail/b")));
  EXPECT_THAT(h.restarts, ElementsAre("closed"));
}

TEST(Informer, GoneRelistsAndReportsWhatChangedMeanwhile) {
  Harness h;
  h.api.listResponses.push_back(
      FakeKubeApi::page({object("mail", "a", "5"), object("mail", "b", "6")}, "10"));
  h.api.watchScripts.push_back({{}, WatchEnd::Gone, 410, "too old resource version: 10 (30)"});
  // While the watch was gone: a changed, b deleted, c created.
  h.api.listResponses.push_back(
      FakeKubeApi::page({object("mail", "a", "21"), object("mail", "c", "22")}, "30"));
  auto inf = h.make(h.options());
  inf->run(h.cancel);

  ASSERT_EQ(h.api.lists.size(), 2u);
  ASSERT_EQ(h.api.watches.size(), 2u);
  EXPECT_EQ(h.api.watches[0].options.resourceVersion, "10");
  EXPECT_EQ(h.api.watches[1].options.resourceVersion, "30");
  EXPECT_TRUE(h.sleeps.empty()) << "a relist after 410 is immediate";
  EXPECT_THAT(keys(*inf), ElementsAre("mail/a", "mail/c"));
  EXPECT_THAT(h.changes,
              ElementsAre(Pair("Added", "mail/a"), Pair("Added", "mail/b"), Pair("Synced", ""),
                          Pair("Updated", "mail/a"), Pair("Added", "mail/c"),
                          Pair("Deleted", "mail/b"), Pair("Synced", "")));
  EXPECT_EQ(inf->stats().watchesGone, 1u);
  EXPECT_THAT(h.restarts, ElementsAre("gone"));
}

TEST(Informer, RepeatedGoneWithoutEventsIsNotATightLoop) {
  Harness h;
  h.api.listResponses.push_back(FakeKubeApi::page({}, "10"));
  h.api.watchScripts.push_back({{}, WatchEnd::Gone, 410, ""});
  h.api.listResponses.push_back(FakeKubeApi::page({}, "11"));
  h.api.watchScripts.push_back({{}, WatchEnd::Gone, 410, ""});
  h.api.listResponses.push_back(FakeKubeApi::page({}, "12"));
  h.api.watchScripts.push_back({{}, WatchEnd::Gone, 410, ""});
  h.api.listResponses.push_back(FakeKubeApi::page({}, "13"));
  h.api.watchScripts.push_back(
      {{event("ADDED", object("mail", "a", "14"))}, WatchEnd::Gone, 410, ""});
  h.api.listResponses.push_back(FakeKubeApi::page({}, "15"));
  auto inf = h.make(h.options());
  inf->run(h.cancel);
  EXPECT_THAT(h.sleeps, ElementsAre(ms(800), ms(1600)));  // the 2nd and 3rd 410 in a row
  EXPECT_EQ(h.api.lists.size(), 5u);
}

TEST(Informer, ErrorsBackOffExponentiallyAndSuccessResetsTheBackoff) {
  Harness h;
  h.api.listResponses.push_back(FakeKubeApi::failedList(0, "TransportError"));
  h.api.listResponses.push_back(FakeKubeApi::failedList(503));
  h.api.listResponses.push_back(FakeKubeApi::failedList(500));
  h.api.listResponses.push_back(FakeKubeApi::page({object("mail", "a", "5")}, "10"));
  // A transport error and a 500: the resourceVersion is still good, watch again from it.
  h.api.watchScripts.push_back({{}, WatchEnd::Error, 0, "connection refused"});
  h.api.watchScripts.push_back({{}, WatchEnd::Error, 500, "etcd timeout"});
  // A 403: something is off with this resource, list again.
  h.api.watchScripts.push_back({{}, WatchEnd::Error, 403, "forbidden"});
  h.api.listResponses.push_back(FakeKubeApi::page({object("mail", "a", "5")}, "12"));
  auto inf = h.make(h.options());
  inf->run(h.cancel);

  EXPECT_THAT(h.sleeps, ElementsAre(ms(800), ms(1600), ms(3200),    // three failed lists
                                    ms(800), ms(1600), ms(3200)));  // reset by the good list
  ASSERT_EQ(h.api.watches.size(), 4u);
  EXPECT_EQ(h.api.watches[0].options.resourceVersion, "10");
  EXPECT_EQ(h.api.watches[1].options.resourceVersion, "10");
  EXPECT_EQ(h.api.watches[2].options.resourceVersion, "10");
  EXPECT_EQ(h.api.watches[3].options.resourceVersion, "12");  // after the relist
  EXPECT_EQ(h.api.lists.size(), 5u);
  EXPECT_EQ(inf->stats().listFailures, 3u);
  EXPECT_EQ(inf->stats().watchErrors, 3u);
}

TEST(Informer, BackoffIsJitteredAndCapped) {
  FakeKubeApi api;
  InformerOptions o;
  o.type = resources::kSecrets;
  Informer inf(api, o);
  EXPECT_EQ(inf.backoffDelay(1, 0.5), ms(800));
  EXPECT_EQ(inf.backoffDelay(1, 0.0), ms(800));  // never below the initial delay
  EXPECT_EQ(inf.backoffDelay(2, 0.0), ms(1280));
  EXPECT_EQ(inf.backoffDelay(2, 0.999), ms(1919));
  EXPECT_EQ(inf.backoffDelay(5, 0.5), ms(12800));
  EXPECT_EQ(inf.backoffDelay(6, 0.5), ms(25600));
  EXPECT_EQ(inf.backoffDelay(6, 0.999), ms(30000));  // capped
  EXPECT_EQ(inf.backoffDelay(7, 0.5), ms(30000));
  EXPECT_EQ(inf.backoffDelay(7, 0.0), ms(24000));  // jitter below the cap too
  EXPECT_EQ(inf.backoffDelay(1000, 0.5), ms(30000));
}

TEST(Informer, AWatchThatClosesAtOnceWithoutEventsIsNotRetriedInATightLoop) {
  Harness h;
  h.api.listResponses.push_back(FakeKubeApi::page({}, "10"));
  h.api.watchScripts.push_back({{}, WatchEnd::Closed, 0, ""});
  h.api.watchScripts.push_back({{}, WatchEnd::Closed, 0, ""});
  auto inf = h.make(h.options());
  inf->run(h.cancel);
  EXPECT_THAT(h.sleeps, ElementsAre(ms(800), ms(1600)));
  EXPECT_EQ(h.api.watches.size(), 3u);
}

TEST(Informer, NamespacedWatchWithSelectorsAndNormalizedObjects) {
  Harness h;
  auto o = h.options();
  o.type = resources::kSecrets;
  o.ns = "mail";
  o.fieldSelector = "type!=helm.sh/release.v1";
  // Items of a core List have no kind/apiVersion; managed fields and the last-applied
  // annotation are dropped.
  Json item =
      object("mail", "tls", "3", {{"type", "kubernetes.io/tls"}, {"data", {{"tls.crt", "eA=="}}}});
  item["metadata"]["managedFields"] = Json::array({{{"manager", "kubectl"}}});
  item["metadata"]["annotations"] = {{"kubectl.kubernetes.io/last-applied-configuration", "{}"}};
  h.api.listResponses.push_back(FakeKubeApi::page({item}, "10"));
  auto inf = h.make(o);
  inf->run(h.cancel);

  EXPECT_EQ(h.api.lists[0].path, "/api/v1/namespaces/mail/secrets");
  EXPECT_EQ(h.api.lists[0].options.fieldSelector, "type!=helm.sh/release.v1");
  EXPECT_EQ(h.api.watches[0].options.fieldSelector, "type!=helm.sh/release.v1");
  auto stored = inf->get("mail/tls");
  ASSERT_TRUE(stored);
  EXPECT_EQ((*stored)["kind"], "Secret");
  EXPECT_EQ((*stored)["apiVersion"], "v1");
  EXPECT_FALSE((*stored)["metadata"].contains("managedFields"));
  EXPECT_FALSE((*stored)["metadata"].contains("annotations"));
  EXPECT_EQ((*stored)["data"]["tls.crt"], "eA==");
}

TEST(Informer, StopsWhenCancelledDuringABackoff) {
  FakeKubeApi api;
  Cancellation cancel;
  InformerOptions o;
  o.type = resources::kAcceptedDomains;
  InformerHooks hooks;
  hooks.sleep = [&](ms) {
    cancel.cancel();
    return false;
  };
  Informer inf(api, o, hooks);
  inf.run(cancel);  // the list fails (empty script), the backoff is cancelled: returns
  EXPECT_EQ(api.lists.size(), 1u);
  EXPECT_FALSE(inf.synced());
}

TEST(Cancellation, WakesSleepersAndRunsCallbacksOnce) {
  Cancellation c;
  int calls = 0;
  c.onCancel([&] { ++calls; });
  uint64_t removed = c.onCancel([&] { calls += 100; });
  c.remove(removed);
  std::thread t([&] { EXPECT_FALSE(c.sleepFor(std::chrono::seconds(30))); });
  std::this_thread::sleep_for(ms(20));
  c.cancel();
  c.cancel();
  t.join();
  EXPECT_EQ(calls, 1);
  c.onCancel([&] { ++calls; });  // already cancelled: runs at once
  EXPECT_EQ(calls, 2);
}

}  // namespace
}  // namespace kuberelay::op
