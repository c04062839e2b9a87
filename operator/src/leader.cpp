#include "leader.h"

#include "kuberelay/common/logfmt.h"

#include "log.h"

namespace kuberelay::op {
namespace {

std::string str(const Json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

}  // namespace

std::string microTime(std::chrono::system_clock::time_point t) {
  return logfmt::utcTimestamp(t, 6);
}

LeaderElector::LeaderElector(KubeApi& api, LeaderOptions options,
                             std::function<void(bool)> onChange)
    : api_(api), options_(std::move(options)), onChange_(std::move(onChange)) {}

std::string LeaderElector::leasePath() const {
  return resources::kLeases.objectPath(options_.ns, options_.name);
}

Json LeaderElector::record(const Json* current) const {
  const std::string now = microTime(options_.wallClock());
  Json spec = {
      {"holderIdentity", options_.identity},
      {"leaseDurationSeconds",
       std::max<int64_t>(
           1, std::chrono::duration_cast<std::chrono::seconds>(options_.leaseDuration).count())},
      {"renewTime", now}};
  int64_t transitions = 0;
  std::string acquired = now;
  if (current) {
    const Json& old = (*current)["spec"];
    transitions = old.value("leaseTransitions", 0);
    if (str(old, "holderIdentity") == options_.identity) {
      acquired = str(old, "acquireTime").empty() ? now : str(old, "acquireTime");
    } else {
      ++transitions;
    }
  }
  spec["acquireTime"] = acquired;
  spec["leaseTransitions"] = transitions;
  Json lease = {{"apiVersion", "coordination.k8s.io/v1"},
                {"kind", "Lease"},
                {"metadata", {{"name", options_.name}, {"namespace", options_.ns}}},
                {"spec", spec}};
  if (current) {
    lease["metadata"]["resourceVersion"] = (*current)["metadata"].value("resourceVersion", "");
  }
  return lease;
}

bool LeaderElector::tryAcquireOrRenew() {
  const auto now = options_.clock();
  ApiResult got = api_.get(leasePath());
  if (got.notFound()) {
    ApiResult created =
        api_.create(resources::kLeases.collectionPath(options_.ns), record(nullptr));
    if (!created.ok()) return false;
    observedRecord_.clear();
    return true;
  }
  if (!got.ok()) return false;
  const Json& spec = got.body["spec"];
  const std::string holder = str(spec, "holderIdentity");
  const std::string seen = holder + "@" + str(spec, "renewTime");
  if (seen != observedRecord_) {
    observedRecord_ = seen;
    observedAt_ = now;
  }
  const int64_t durationSeconds = spec.value("leaseDurationSeconds", 15);
  const bool expired = now - observedAt_ > std::chrono::seconds(durationSeconds);
  if (!holder.empty() && holder != options_.identity && !expired) return false;
  ApiResult put = api_.replace(leasePath(), record(&got.body));
  return put.ok();
}

bool LeaderElector::step() {
  const auto now = options_.clock();
  bool ok = tryAcquireOrRenew();
  if (ok) {
    lastRenewed_ = now;
    setLeader(true);
  } else if (leader_ && now - lastRenewed_ > options_.renewDeadline) {
    logWarn("lost the leader lease: could not renew it in time",
            {{"lease", options_.ns + "/" + options_.name}});
    setLeader(false);
  } else if (!leader_) {
    setLeader(false);
  }
  return leader_;
}

void LeaderElector::setLeader(bool leading) {
  if (leader_.exchange(leading) == leading) return;
  logInfo(leading ? "leading" : "not leading",
          {{"lease", options_.ns + "/" + options_.name}, {"identity", options_.identity}});
  if (onChange_) onChange_(leading);
}

void LeaderElector::release() {
  if (!leader_) return;
  ApiResult got = api_.get(leasePath());
  if (got.ok() && str(got.body["spec"], "holderIdentity") == options_.identity) {
    Json lease = record(&got.body);
    lease["spec"]["holderIdentity"] = "";
    lease["spec"]["leaseDurationSeconds"] = 1;
    ApiResult put = api_.replace(leasePath(), lease);
    logInfo("released the leader lease", {{"lease", options_.ns + "/" + options_.name},
                                          {"result", put.ok() ? "ok" : put.describe()}});
  }
  setLeader(false);
}

void LeaderElector::run(Cancellation& cancel) {
  while (!cancel.cancelled()) {
    step();
    if (!cancel.sleepFor(options_.retryPeriod)) break;
  }
  release();
}

}  // namespace kuberelay::op
