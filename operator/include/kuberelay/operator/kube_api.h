// NAME
//   kube_api.h - the few Kubernetes API calls the operator makes, behind an interface
// DESCRIPTION
//   KubeApi is what the informers and the reconciler see of the API server: paginated lists,
//   watch streams delivered one event at a time, GET, a merge-patch of the /status subresource
//   with a resourceVersion precondition, and Event creation. It carries no HTTP library types,
//   so the cpprestsdk implementation (src/kube/cpprest_kube_api.cpp; cpprestsdk is in
//   maintenance mode) can be replaced, and tests use a hand-written fake.
//   Paths are API paths ("/apis/smtp.kuberelay.io/v1alpha1/namespaces/mail/receiveconnectors");
//   ResourceType builds them. Every call is blocking and thread-safe; long calls (watch) stop
//   when their Cancellation is cancelled.
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>

namespace kuberelay::op {

using Json = nlohmann::json;

// A cancellation flag that wakes sleepers and runs registered callbacks once (e.g. to abort an
// HTTP request in flight).
class Cancellation {
public:
  void cancel() {
    std::map<uint64_t, std::function<void()>> callbacks;
    {
      std::lock_guard lock(mutex_);
      if (cancelled_.exchange(true)) return;
      callbacks.swap(callbacks_);
    }
    cv_.notify_all();
    for (auto& [id, fn] : callbacks) fn();
  }
  bool cancelled() const { return cancelled_.load(); }
  // Sleeps up to `d`; false when cancelled (before or during the sleep).
  bool sleepFor(std::chrono::milliseconds d) {
    std::unique_lock lock(mutex_);
    return !cv_.wait_for(lock, d, [&] { return cancelled_.load(); });
  }
  // Runs `fn` on cancel (at once if already cancelled). Returns an id for remove().
  uint64_t onCancel(std::function<void()> fn) {
    {
      std::lock_guard lock(mutex_);
      if (!cancelled_) {
        callbacks_.emplace(++next_, std::move(fn));
        return next_;
      }
    }
    fn();
    return 0;
  }
  void remove(uint64_t id) {
    std::lock_guard lock(mutex_);
    callbacks_.erase(id);
  }

private:
  std::atomic<bool> cancelled_{false};
  std::mutex mutex_;
  std::condition_variable cv_;
  std::map<uint64_t, std::function<void()>> callbacks_;
  uint64_t next_ = 0;
};

// The outcome of one request. `status` is the HTTP status, 0 when no response arrived
// (connection refused, TLS failure, timeout). For errors, reason/message come from the
// API server's Status object when it sent one.
struct ApiResult {
  int status = 0;
  std::string reason;   // "Conflict", "NotFound", "Expired", ... or a transport error kind
  std::string message;  // human-readable
  Json body;            // the decoded response (an object or a List) on success

  bool ok() const { return status >= 200 && status < 300; }
  bool conflict() const { return status == 409; }
  bool notFound() const { return status == 404; }
  bool gone() const { return status == 410; }
  std::string describe() const {
    return (status ? "HTTP " + std::to_string(status) : std::string("no response")) +
           (reason.empty() ? "" : " " + reason) + (message.empty() ? "" : ": " + message);
  }
};

struct ListOptions {
  int64_t limit = 0;            // 0: no pagination
  std::string continueToken;    // from the previous page
  std::string resourceVersion;  // "" = most recent (a consistent read from etcd)
  std::string labelSelector;
  std::string fieldSelector;
};

struct ListResult {
  ApiResult result;  // result.body is the whole List on success
  Json items = Json::array();
  std::string resourceVersion;  // the List's metadata.resourceVersion
  std::string continueToken;    // non-empty: more pages
};

struct WatchOptions {
  std::string resourceVersion;
  int timeoutSeconds = 300;  // the server closes the stream after this long
  bool allowWatchBookmarks = true;
  std::string labelSelector;
  std::string fieldSelector;
};

// How a watch ended.
enum class WatchEnd {
  Closed,     // the server ended the stream (timeoutSeconds elapsed, or it shut down cleanly)
  Gone,       // 410 Gone / "too old resource version" (HTTP status or an ERROR event): relist
  Error,      // transport error, other HTTP error or ERROR event
  Cancelled,  // the Cancellation fired
};

struct WatchResult {
  WatchEnd end = WatchEnd::Closed;
  ApiResult result;  // status and message of the failure, when there is one
  uint64_t events = 0;
};

// One watch event: {"type": "ADDED"|"MODIFIED"|"DELETED"|"BOOKMARK", "object": {...}}. ERROR
// events end the watch (WatchResult) and are not passed on. Return false to stop watching.
using WatchCallback = std::function<bool(const Json& event)>;

class KubeApi {
public:
  virtual ~KubeApi() = default;

  virtual ListResult list(const std::string& path, const ListOptions& options) = 0;
  virtual WatchResult watch(const std::string& path, const WatchOptions& options,
                            const WatchCallback& onEvent, Cancellation& cancel) = 0;
  virtual ApiResult get(const std::string& path) = 0;
  // JSON merge patch of objectPath + "/status" with {"metadata": {"resourceVersion": rv},
  // "status": status}: the server refuses it with 409 Conflict when the object changed since rv
  // (no precondition when rv is empty). On success body is the updated object.
  virtual ApiResult patchStatus(const std::string& objectPath, const Json& status,
                                const std::string& resourceVersion) = 0;
  // POST /api/v1/namespaces/{ns}/events.
  virtual ApiResult createEvent(const std::string& ns, const Json& event) = 0;
  // POST a new object to a collection (409 AlreadyExists when it exists). For Leases.
  virtual ApiResult create(const std::string& collectionPath, const Json& object) = 0;
  // PUT an object; 409 Conflict when its metadata.resourceVersion is not the current one.
  virtual ApiResult replace(const std::string& objectPath, const Json& object) = 0;
};

// A resource of the API (what the informers watch).
struct ResourceType {
  std::string group;    // "" for the core group
  std::string version;  // "v1alpha1"
  std::string plural;   // "receiveconnectors"
  std::string kind;     // "ReceiveConnector"

  std::string apiVersion() const { return group.empty() ? version : group + "/" + version; }
  // The collection in one namespace, or across all namespaces when ns is empty.
  std::string collectionPath(const std::string& ns = {}) const {
    std::string base = group.empty() ? "/api/" + version : "/apis/" + group + "/" + version;
    return base + (ns.empty() ? "" : "/namespaces/" + ns) + "/" + plural;
  }
  std::string objectPath(const std::string& ns, const std::string& name) const {
    return collectionPath(ns) + "/" + name;
  }
};

namespace resources {
inline const ResourceType kReceiveConnectors{"smtp.kuberelay.io", "v1alpha1", "receiveconnectors",
                                             "ReceiveConnector"};
inline const ResourceType kSenderPermissions{"smtp.kuberelay.io", "v1alpha1", "senderpermissions",
                                             "SenderPermission"};
inline const ResourceType kAcceptedDomains{"smtp.kuberelay.io", "v1alpha1", "accepteddomains",
                                           "AcceptedDomain"};
inline const ResourceType kSecrets{"", "v1", "secrets", "Secret"};
inline const ResourceType kLeases{"coordination.k8s.io", "v1", "leases", "Lease"};
}  // namespace resources

}  // namespace kuberelay::op
