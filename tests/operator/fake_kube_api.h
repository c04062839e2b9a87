// A scripted, recording KubeApi for the operator's unit tests.
#pragma once

#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "kuberelay/operator/kube_api.h"

namespace kuberelay::op::testing {

class FakeKubeApi : public KubeApi {
public:
  struct ListCall {
    std::string path;
    ListOptions options;
  };
  struct WatchCall {
    std::string path;
    WatchOptions options;
  };
  struct WatchScript {
    std::vector<Json> events;
    WatchEnd end = WatchEnd::Closed;
    int status = 0;
    std::string message;
  };
  struct PatchCall {
    std::string path;
    Json status;
    std::string resourceVersion;
  };

  // Scripts, consumed in order. An exhausted list script fails (status 0); an exhausted watch
  // script cancels the run (the test is over).
  std::deque<ListResult> listResponses;
  std::deque<WatchScript> watchScripts;
  std::function<ApiResult(const std::string&)> onGet;
  std::function<ApiResult(const PatchCall&)> onPatch;  // default: 200 with the patch echoed

  std::vector<ListCall> lists;
  std::vector<WatchCall> watches;
  std::vector<std::string> gets;
  std::vector<PatchCall> patches;
  std::vector<std::pair<std::string, Json>> events;

  static ListResult page(std::vector<Json> items, std::string rv, std::string cont = {}) {
    ListResult r;
    r.result.status = 200;
    r.items = Json::array();
    for (auto& i : items) r.items.push_back(std::move(i));
    r.resourceVersion = std::move(rv);
    r.continueToken = std::move(cont);
    return r;
  }
  static ListResult failedList(int status, std::string reason = "Boom") {
    ListResult r;
    r.result.status = status;
    r.result.reason = std::move(reason);
    return r;
  }

  ListResult list(const std::string& path, const ListOptions& options) override {
    std::lock_guard lock(mutex_);
    lists.push_back({path, options});
    if (listResponses.empty()) return failedList(0, "ScriptExhausted");
    ListResult r = listResponses.front();
    listResponses.pop_front();
    return r;
  }

  WatchResult watch(const std::string& path, const WatchOptions& options,
                    const WatchCallback& onEvent, Cancellation& cancel) override {
    WatchScript script;
    {
      std::lock_guard lock(mutex_);
      watches.push_back({path, options});
      if (watchScripts.empty()) {
        cancel.cancel();
        return {WatchEnd::Cancelled, {}, 0};
      }
      script = watchScripts.front();
      watchScripts.pop_front();
    }
    WatchResult r;
    for (const auto& e : script.events) {
      ++r.events;
      if (!onEvent(e)) {
        r.end = WatchEnd::Cancelled;
        return r;
      }
    }
    r.end = script.end;
    r.result.status = script.status;
    r.result.message = script.message;
    return r;
  }

  ApiResult get(const std::string& path) override {
    gets.push_back(path);
    if (onGet) return onGet(path);
    ApiResult r;
    r.status = 404;
    return r;
  }

  ApiResult patchStatus(const std::string& objectPath, const Json& status,
                        const std::string& resourceVersion) override {
    PatchCall call{objectPath, status, resourceVersion};
    patches.push_back(call);
    if (onPatch) return onPatch(call);
    ApiResult r;
    r.status = 200;
    r.body = {{"status", status}};
    return r;
  }

  std::function<ApiResult(const std::string&, const Json&)> onCreate;   // default: 201 echo
  std::function<ApiResult(const std::string&, const Json&)> onReplace;  // default: 200 echo
  ApiResult create(const std::string& path, const Json& object) override {
    if (onCreate) return onCreate(path, object);
    ApiResult r;
    r.status = 201;
    r.body = object;
    return r;
  }
  ApiResult replace(const std::string& path, const Json& object) override {
    if (onReplace) return onReplace(path, object);
    ApiResult r;
    r.status = 200;
    r.body = object;
    return r;
  }

  ApiResult createEvent(const std::string& ns, const Json& event) override {
    events.emplace_back(ns, event);
    ApiResult r;
    r.status = 201;
    return r;
  }

private:
  std::mutex mutex_;
};

inline Json object(const std::string& ns, const std::string& name, const std::string& rv,
                   Json extra = Json::object()) {
  Json o = {{"metadata", {{"namespace", ns}, {"name", name}, {"resourceVersion", rv}}}};
  for (auto& [k, v] : extra.items()) o[k] = v;
  return o;
}

inline Json event(const std::string& type, Json object) {
  return {{"type", type}, {"object", std::move(object)}};
}

}  // namespace kuberelay::op::testing
