// NAME
//   informer.h - a cache of one resource, kept current by list-then-watch
// DESCRIPTION
//   client-go's reflector / kube-rs's watcher, as an explicit loop (style.md §3):
//   1. list: paginated (limit 500, continue tokens), resourceVersion "" (a consistent read);
//      the cache is replaced by the list and the differences are reported (Added, Updated,
//      Deleted), then Synced;
//   2. watch from the list's resourceVersion, with bookmarks and a random timeout in
//      [minWatchTimeout, 2*minWatchTimeout] (spreads the load); every event moves the
//      resourceVersion on (bookmarks only move it);
//   3. the watch ends: Closed -> watch again from the last resourceVersion; Gone (410, etcd
//      compacted past it) -> relist at once (with backoff when it happens again without an
//      event in between); Error -> jittered exponential backoff
//      (800 ms doubling to 30 s), then watch again (transport errors, 5xx, 429) or relist
//      (any other HTTP error). A failed list backs off the same way. Success resets the
//      backoff. A watch that closes within a second without an event counts as a failure,
//      so a server that closes every stream at once is not hammered.
//   Objects are stored as shared immutable JSON keyed "namespace/name" (or "name"), without
//   metadata.managedFields and the last-applied annotation. Listeners are called from the
//   informer's thread, outside its lock. Sleep and randomness are injectable for tests.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "kuberelay/operator/kube_api.h"

namespace kuberelay::op {

enum class ChangeType { Added, Updated, Deleted, Synced };
const char* toString(ChangeType type);

struct InformerOptions {
  ResourceType type;
  std::string ns;  // empty: every namespace
  int64_t pageSize = 500;
  std::string labelSelector;
  std::string fieldSelector;
  std::chrono::seconds minWatchTimeout{300};
  std::chrono::milliseconds initialBackoff{800};
  std::chrono::milliseconds maxBackoff{30000};
};

struct InformerHooks {
  // Sleeps (backoff); false when cancelled. Default: Cancellation::sleepFor.
  std::function<bool(std::chrono::milliseconds)> sleep;
  // Uniform in [0, 1). Default: a seeded std::mt19937_64.
  std::function<double()> random;
};

struct InformerStats {
  uint64_t lists = 0;                               // complete lists (initial and relists)
  uint64_t listFailures = 0;                        // lists that failed (a page failed)
  uint64_t watches = 0;                             // watch requests made
  uint64_t watchesGone = 0;                         // ended with 410 Gone
  uint64_t watchErrors = 0;                         // ended with an error
  uint64_t events = 0;                              // watch events applied (bookmarks included)
  std::vector<std::chrono::milliseconds> backoffs;  // the last 64 backoff delays
};

class Informer {
public:
  using ObjectPtr = std::shared_ptr<const Json>;
  using Listener = std::function<void(ChangeType, const std::string& key)>;
  // Called after every watch that ended, with "closed", "gone" or "error".
  using RestartListener = std::function<void(const char* reason)>;

  Informer(KubeApi& api, InformerOptions options, InformerHooks hooks = {});

  void setListener(Listener listener) { listener_ = std::move(listener); }
  void setRestartListener(RestartListener listener) { restartListener_ = std::move(listener); }

  // The list-and-watch loop; returns when `cancel` fires.
  void run(Cancellation& cancel);

  bool synced() const;
  std::vector<ObjectPtr> list() const;  // in key order
  ObjectPtr get(const std::string& key) const;
  std::string resourceVersion() const;
  InformerStats stats() const;
  const InformerOptions& options() const { return options_; }

  // "namespace/name", or "name" for cluster-scoped objects.
  static std::string keyOf(const Json& object);
  // The delay before retrying after `failures` consecutive failures (>= 1), given a uniform
  // random number in [0, 1): initialBackoff * 2^(failures-1), capped at maxBackoff, times a
  // jitter factor in [0.8, 1.2), kept within [initialBackoff, maxBackoff].
  std::chrono::milliseconds backoffDelay(int failures, double random) const;

private:
  enum class ListOutcome { Ok, Failed, Cancelled };
  // One list (when needed) and one watch; false when the loop must end (cancelled).
  bool step(Cancellation& cancel, bool& needList, int& failures);
  ListOutcome listAll(Cancellation& cancel);
  bool backoff(int failures, Cancellation& cancel);
  void normalize(Json& object) const;
  void emit(ChangeType type, const std::string& key);

  KubeApi& api_;
  InformerOptions options_;
  InformerHooks hooks_;
  Listener listener_;
  RestartListener restartListener_;

  mutable std::mutex mutex_;
  std::map<std::string, ObjectPtr> cache_;
  std::string resourceVersion_;
  bool synced_ = false;
  InformerStats stats_;
  int gonesInARow_ = 0;  // only touched by run()
};

}  // namespace kuberelay::op
