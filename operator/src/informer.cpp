#include "informer.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "log.h"

namespace kuberelay::op {

const char* toString(ChangeType type) {
  switch (type) {
    case ChangeType::Added:
      return "Added";
    case ChangeType::Updated:
      return "Updated";
    case ChangeType::Deleted:
      return "Deleted";
    case ChangeType::Synced:
      return "Synced";
  }
  return "?";
}

Informer::Informer(KubeApi& api, InformerOptions options, InformerHooks hooks)
    : api_(api), options_(std::move(options)), hooks_(std::move(hooks)) {
  if (!hooks_.random) {
    auto engine = std::make_shared<std::mt19937_64>(std::random_device{}());
    auto mutex = std::make_shared<std::mutex>();
    hooks_.random = [engine, mutex] {
      std::lock_guard lock(*mutex);
      return std::uniform_real_distribution<double>(0.0, 1.0)(*engine);
    };
  }
}

std::string Informer::keyOf(const Json& object) {
  const Json* md =
      object.is_object() && object.contains("metadata") ? &object["metadata"] : nullptr;
  if (!md || !md->is_object()) return {};
  std::string ns = md->value("namespace", "");
  std::string name = md->value("name", "");
  return ns.empty() ? name : ns + "/" + name;
}

static std::string resourceVersionOf(const Json& object) {
  if (!object.is_object()) return {};
  auto md = object.find("metadata");
  if (md == object.end() || !md->is_object()) return {};
  return md->value("resourceVersion", "");
}

void Informer::normalize(Json& object) const {
  // Items of a List carry no apiVersion/kind for built-in types; the decoder needs both.
  if (!object.contains("apiVersion")) object["apiVersion"] = options_.type.apiVersion();
  if (!object.contains("kind")) object["kind"] = options_.type.kind;
  auto md = object.find("metadata");
  if (md != object.end() && md->is_object()) {
    md->erase("managedFields");
    auto ann = md->find("annotations");
    if (ann != md->end() && ann->is_object()) {
      ann->erase("kubectl.kubernetes.io/last-applied-configuration");
      if (ann->empty()) md->erase("annotations");
    }
  }
}

bool Informer::synced() const {
  std::lock_guard lock(mutex_);
  return synced_;
}

std::vector<Informer::ObjectPtr> Informer::list() const {
  std::lock_guard lock(mutex_);
  std::vector<ObjectPtr> out;
  out.reserve(cache_.size());
  for (const auto& [key, obj] : cache_) out.push_back(obj);
  return out;
}

Informer::ObjectPtr Informer::get(const std::string& key) const {
  std::lock_guard lock(mutex_);
  auto it = cache_.find(key);
  return it == cache_.end() ? nullptr : it->second;
}

std::string Informer::resourceVersion() const {
  std::lock_guard lock(mutex_);
  return resourceVersion_;
}

InformerStats Informer::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void Informer::emit(ChangeType type, const std::string& key) {
  if (listener_) listener_(type, key);
}

std::chrono::milliseconds Informer::backoffDelay(int failures, double random) const {
  const double initial = static_cast<double>(options_.initialBackoff.count());
  const double max = static_cast<double>(options_.maxBackoff.count());
  double base = initial * std::pow(2.0, std::min(failures, 32) - 1);
  base = std::min(base, max);
  double jittered = base * (0.8 + 0.4 * std::clamp(random, 0.0, 1.0));
  jittered = std::clamp(jittered, initial, max);
  return std::chrono::milliseconds(static_cast<int64_t>(jittered));
}

bool Informer::backoff(int failures, Cancellation& cancel) {
  auto delay = backoffDelay(failures, hooks_.random());
  {
    std::lock_guard lock(mutex_);
    stats_.backoffs.push_back(delay);
    if (stats_.backoffs.size() > 64) stats_.backoffs.erase(stats_.backoffs.begin());
  }
  if (hooks_.sleep) return hooks_.sleep(delay) && !cancel.cancelled();
  return cancel.sleepFor(delay);
}

Informer::ListOutcome Informer::listAll(Cancellation& cancel) {
  std::map<std::string, ObjectPtr> fresh;
  ListOptions lo;
  lo.limit = options_.pageSize;
  lo.labelSelector = options_.labelSelector;
  lo.fieldSelector = options_.fieldSelector;
  std::string listVersion;
  const std::string path = options_.type.collectionPath(options_.ns);
  for (;;) {
    if (cancel.cancelled()) return ListOutcome::Cancelled;
    ListResult page = api_.list(path, lo);
    if (!page.result.ok()) {
      // An expired continue token (410) restarts the whole list, like any other failure.
      logWarn("list failed", {{"kind", options_.type.kind},
                              {"namespace", options_.ns.empty() ? "*" : options_.ns},
                              {"error", page.result.describe()}});
      std::lock_guard lock(mutex_);
      ++stats_.listFailures;
      return ListOutcome::Failed;
    }
    for (auto& item : page.items) {
      normalize(item);
      std::string key = keyOf(item);
      if (key.empty()) continue;
      fresh[key] = std::make_shared<const Json>(std::move(item));
    }
    listVersion = page.resourceVersion;
    if (page.continueToken.empty()) break;
    lo.continueToken = page.continueToken;
  }

  // Replace the cache; report what changed.
  std::vector<std::pair<ChangeType, std::string>> changes;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [key, obj] : fresh) {
      auto it = cache_.find(key);
      if (it == cache_.end()) {
        changes.emplace_back(ChangeType::Added, key);
      } else if (resourceVersionOf(*it->second) != resourceVersionOf(*obj)) {
        changes.emplace_back(ChangeType::Updated, key);
      }
    }
    for (const auto& [key, obj] : cache_) {
      if (!fresh.count(key)) changes.emplace_back(ChangeType::Deleted, key);
    }
    cache_ = std::move(fresh);
    resourceVersion_ = listVersion;
    synced_ = true;
    ++stats_.lists;
  }
  for (const auto& [type, key] : changes) emit(type, key);
  emit(ChangeType::Synced, "");
  return ListOutcome::Ok;
}

void Informer::run(Cancellation& cancel) {
  const std::string nsLabel = options_.ns.empty() ? "*" : options_.ns;
  bool needList = true;
  int failures = 0;
  while (!cancel.cancelled()) {
    try {
      if (!step(cancel, needList, failures)) return;
    } catch (const std::exception& e) {
      // Never leave the cache unattended: start over from a list.
      logError("informer failed",
               {{"kind", options_.type.kind}, {"namespace", nsLabel}, {"error", e.what()}});
      needList = true;
      if (!backoff(++failures, cancel)) return;
    }
  }
}

bool Informer::step(Cancellation& cancel, bool& needList, int& failures) {
  const std::string path = options_.type.collectionPath(options_.ns);
  const std::string nsLabel = options_.ns.empty() ? "*" : options_.ns;
  if (needList) {
    ListOutcome outcome = listAll(cancel);
    if (outcome == ListOutcome::Cancelled) return false;
    if (outcome == ListOutcome::Failed) return backoff(++failures, cancel);
    failures = 0;
    needList = false;
    logInfo("listed", {{"kind", options_.type.kind},
                       {"namespace", nsLabel},
                       {"objects", std::to_string(list().size())},
                       {"resourceVersion", resourceVersion()}});
  }

  WatchOptions wo;
  wo.resourceVersion = resourceVersion();
  wo.allowWatchBookmarks = true;
  wo.labelSelector = options_.labelSelector;
  wo.fieldSelector = options_.fieldSelector;
  const auto minTimeout = std::max<int64_t>(1, options_.minWatchTimeout.count());
  wo.timeoutSeconds = static_cast<int>(
      minTimeout + static_cast<int64_t>(hooks_.random() * static_cast<double>(minTimeout)));
  {
    std::lock_guard lock(mutex_);
    ++stats_.watches;
  }
  auto started = std::chrono::steady_clock::now();
  WatchResult wr = api_.watch(
      path, wo,
      [&](const Json& event) {
        std::string type = event.value("type", "");
        auto objIt = event.find("object");
        if (objIt == event.end() || !objIt->is_object()) return true;
        Json object = *objIt;
        std::string rv = resourceVersionOf(object);
        std::optional<std::pair<ChangeType, std::string>> change;
        {
          std::lock_guard lock(mutex_);
          ++stats_.events;
          if (!rv.empty()) resourceVersion_ = rv;
          if (type == "ADDED" || type == "MODIFIED") {
            normalize(object);
            std::string key = keyOf(object);
            if (!key.empty()) {
              bool existed = cache_.count(key) > 0;
              cache_[key] = std::make_shared<const Json>(std::move(object));
              change.emplace(existed ? ChangeType::Updated : ChangeType::Added, key);
            }
          } else if (type == "DELETED") {
            std::string key = keyOf(object);
            if (cache_.erase(key)) change.emplace(ChangeType::Deleted, key);
          }
          // BOOKMARK: only the resourceVersion moves.
        }
        if (change) emit(change->first, change->second);
        return !cancel.cancelled();
      },
      cancel);
  auto lasted = std::chrono::steady_clock::now() - started;

  if (wr.end != WatchEnd::Gone) gonesInARow_ = 0;
  switch (wr.end) {
    case WatchEnd::Cancelled:
      break;
    case WatchEnd::Closed:
      if (restartListener_) restartListener_("closed");
      if (wr.events == 0 && lasted < std::chrono::seconds(1)) {
        // Closed at once: do not spin.
        if (!backoff(++failures, cancel)) return false;
      } else {
        failures = 0;
      }
      break;
    case WatchEnd::Gone:
      if (restartListener_) restartListener_("gone");
      {
        std::lock_guard lock(mutex_);
        ++stats_.watchesGone;
      }
      logInfo("watch expired (410 Gone): relisting", {{"kind", options_.type.kind},
                                                      {"namespace", nsLabel},
                                                      {"resourceVersion", wo.resourceVersion},
                                                      {"message", wr.result.message}});
      needList = true;
      failures = 0;
      // A list followed at once by 410 again (the server's watch cache is behind its list):
      // relist, but not in a tight loop.
      gonesInARow_ = wr.events == 0 ? gonesInARow_ + 1 : 1;
      if (gonesInARow_ >= 2 && !backoff(gonesInARow_ - 1, cancel)) return false;
      break;
    case WatchEnd::Error: {
      if (restartListener_) restartListener_("error");
      {
        std::lock_guard lock(mutex_);
        ++stats_.watchErrors;
      }
      const int status = wr.result.status;
      // Transport errors, overload and server errors: the resourceVersion is still good.
      const bool rewatch = status == 0 || status == 429 || status >= 500;
      if (!rewatch) needList = true;
      if (wr.events > 0) failures = 0;
      logWarn("watch failed", {{"kind", options_.type.kind},
                               {"namespace", nsLabel},
                               {"error", wr.result.describe()},
                               {"next", rewatch ? "watch" : "list"}});
      if (!backoff(++failures, cancel)) return false;
      break;
    }
  }
  return !cancel.cancelled();
}

}  // namespace kuberelay::op
