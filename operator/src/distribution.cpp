#include "distribution.h"

#include <algorithm>
#include <set>
#include <tuple>

#include "log.h"

namespace kuberelay::op {
namespace {

using Key = std::tuple<std::string, std::string, std::string>;  // kind, namespace, name

// Which objects a pool needs, by key; fills `subset` with their decoded form.
std::set<Key> selectPool(const policy::ResourceSet& set, const std::string& pool,
                         policy::ResourceSet& subset) {
  std::set<Key> keys;
  std::set<std::pair<std::string, std::string>> connectors;
  for (const auto& c : set.connectors) {
    if (c.relayPool != pool) continue;
    connectors.emplace(c.meta.ns, c.meta.name);
    keys.emplace("ReceiveConnector", c.meta.ns, c.meta.name);
    subset.connectors.push_back(c);
    for (const std::string* s : c.secretNameFields()) {
      if (!s->empty()) keys.emplace("Secret", c.meta.ns, *s);
    }
  }
  for (const auto& p : set.permissions) {
    if (!connectors.count({p.meta.ns, p.connector})) continue;
    keys.emplace("SenderPermission", p.meta.ns, p.meta.name);
    subset.permissions.push_back(p);
  }
  for (const auto& d : set.domains) {
    keys.emplace("AcceptedDomain", d.meta.ns, d.meta.name);
    subset.domains.push_back(d);
  }
  for (const auto& s : set.secrets) {
    if (keys.count({"Secret", s.meta.ns, s.meta.name})) subset.secrets.push_back(s);
  }
  return keys;
}

}  // namespace

std::vector<size_t> poolObjects(const policy::ResourceSet& set,
                                const std::vector<PolicySourceObject>& objects,
                                const std::string& pool) {
  policy::ResourceSet subset;
  std::set<Key> keys = selectPool(set, pool, subset);
  std::vector<size_t> out;
  for (size_t i = 0; i < objects.size(); ++i) {
    if (keys.count({objects[i].kind, objects[i].ns, objects[i].name})) out.push_back(i);
  }
  return out;
}

void PolicyDistributor::onRolloutChange(std::function<void()> callback) {
  std::lock_guard lock(mutex_);
  onRolloutChange_ = std::move(callback);
}

uint64_t PolicyDistributor::publish(std::shared_ptr<const policy::ResourceSet> set,
                                    std::shared_ptr<const std::vector<PolicySourceObject>> objects,
                                    std::chrono::steady_clock::time_point changedAt) {
  uint64_t epoch;
  {
    std::lock_guard lock(mutex_);
    set_ = std::move(set);
    objects_ = std::move(objects);
    changedAt_ = changedAt;
    pools_.clear();
    epoch = ++epoch_;
    // Cut the snapshots of the pools relays serve now, so that their versions are known.
    std::set<std::string> served;
    for (const auto& [id, r] : relays_) served.insert(r.pool);
    for (const auto& pool : served) snapshotLocked(pool);
  }
  published_.notify_all();
  notifyRolloutChange();
  return epoch;
}

std::shared_ptr<const PoolSnapshot> PolicyDistributor::snapshotLocked(
    const std::string& pool) const {
  if (!set_) return nullptr;
  auto it = pools_.find(pool);
  if (it != pools_.end()) return it->second;
  policy::ResourceSet subset;
  std::set<Key> keys = selectPool(*set_, pool, subset);
  auto snap = std::make_shared<PoolSnapshot>();
  snap->pool = pool;
  snap->epoch = epoch_;
  snap->changedAt = changedAt_;
  snap->keepAlive = objects_;
  for (const auto& o : *objects_) {
    if (keys.count({o.kind, o.ns, o.name})) snap->objects.push_back(&o);
  }
  // The relay compiles the same objects for the same pool: it must arrive at this version.
  snap->version = policy::compile(subset, {pool, false}).snapshot->version();
  pools_[pool] = snap;
  uint64_t& latest = versionEpochs_[pool][snap->version];
  latest = std::max(latest, snap->epoch);
  return snap;
}

std::shared_ptr<const PoolSnapshot> PolicyDistributor::snapshot(const std::string& pool) {
  std::lock_guard lock(mutex_);
  return snapshotLocked(pool);
}

Rollout PolicyDistributor::rollout(const std::string& pool, uint64_t since) const {
  std::lock_guard lock(mutex_);
  Rollout r;
  for (const auto& [id, relay] : relays_) {
    if (!pool.empty() && relay.pool != pool) continue;
    auto snap = snapshotLocked(relay.pool);
    if (!snap) continue;
    ++r.total;
    uint64_t runs = 0;  // the latest publish the relay's version stands for
    if (auto p = versionEpochs_.find(relay.pool); p != versionEpochs_.end()) {
      if (auto v = p->second.find(relay.version); v != p->second.end()) runs = v->second;
    }
    if (runs > 0 && runs >= since) {
      ++r.applied;
    } else if (relay.rejectedVersion == snap->version) {
      ++r.rejected;
      if (r.error.empty()) r.error = relay.pod + ": " + relay.error;
    }
  }
  return r;
}

uint64_t PolicyDistributor::waitForPublish(uint64_t epoch, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  published_.wait_for(lock, timeout, [&] { return epoch_ != epoch || stopped_; });
  return epoch_;
}

void PolicyDistributor::stop() {
  {
    std::lock_guard lock(mutex_);
    stopped_ = true;
  }
  published_.notify_all();
}

uint64_t PolicyDistributor::connect(const std::string& pod, const std::string& pool,
                                    const std::string& version) {
  uint64_t id;
  {
    std::lock_guard lock(mutex_);
    id = ++nextRelay_;
    relays_[id] = Relay{pod, pool, version, "", ""};
    relayCountChanged(pool);
  }
  notifyRolloutChange();
  return id;
}

void PolicyDistributor::acked(uint64_t relay, const std::string& version) {
  {
    std::lock_guard lock(mutex_);
    auto it = relays_.find(relay);
    if (it == relays_.end()) return;
    it->second.version = version;
    it->second.rejectedVersion.clear();
    it->second.error.clear();
    if (observer_) observer_->relayUpdate(it->second.pool, "applied");
    checkPropagated(it->second.pool);
  }
  notifyRolloutChange();
}

void PolicyDistributor::nacked(uint64_t relay, const std::string& rejectedVersion,
                               const std::string& error) {
  {
    std::lock_guard lock(mutex_);
    auto it = relays_.find(relay);
    if (it == relays_.end()) return;
    it->second.rejectedVersion = rejectedVersion;
    it->second.error = error;
    if (observer_) observer_->relayUpdate(it->second.pool, "rejected");
  }
  notifyRolloutChange();
}

void PolicyDistributor::disconnect(uint64_t relay) {
  {
    std::lock_guard lock(mutex_);
    auto it = relays_.find(relay);
    if (it == relays_.end()) return;
    std::string pool = it->second.pool;
    relays_.erase(it);
    relayCountChanged(pool);
    checkPropagated(pool);  // the last laggard may have left
  }
  notifyRolloutChange();
}

void PolicyDistributor::relayCountChanged(const std::string& pool) {
  if (!observer_) return;
  size_t n = 0;
  for (const auto& [id, r] : relays_) n += r.pool == pool;
  observer_->relaysConnected(pool, n);
}

void PolicyDistributor::checkPropagated(const std::string& pool) {
  auto snap = snapshotLocked(pool);
  if (!snap || propagatedEpoch_[pool] == snap->epoch) return;
  size_t total = 0;
  for (const auto& [id, r] : relays_) {
    if (r.pool != pool) continue;
    ++total;
    if (r.version != snap->version) return;
  }
  if (total == 0) return;
  propagatedEpoch_[pool] = snap->epoch;
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - snap->changedAt).count();
  if (observer_) observer_->propagated(pool, seconds);
  logInfo("policy propagated", {{"pool", pool},
                                {"version", snap->version},
                                {"relays", std::to_string(total)},
                                {"seconds", std::to_string(seconds)}});
}

void PolicyDistributor::notifyRolloutChange() {
  std::function<void()> callback;
  {
    std::lock_guard lock(mutex_);
    callback = onRolloutChange_;
  }
  if (callback) callback();
}

}  // namespace kuberelay::op
