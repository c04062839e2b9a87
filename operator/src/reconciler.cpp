#include "reconciler.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <ctime>
#include <set>

#include "kuberelay/common/logfmt.h"
#include "kuberelay/policy/manifest.h"
#include "log.h"

namespace kuberelay::op {

const char* kindName(Kind kind) {
  switch (kind) {
    case Kind::ReceiveConnector:
      return "ReceiveConnector";
    case Kind::SenderPermission:
      return "SenderPermission";
    case Kind::AcceptedDomain:
      return "AcceptedDomain";
  }
  return "?";
}

const ResourceType& resourceOf(Kind kind) {
  switch (kind) {
    case Kind::ReceiveConnector:
      return resources::kReceiveConnectors;
    case Kind::SenderPermission:
      return resources::kSenderPermissions;
    case Kind::AcceptedDomain:
      return resources::kAcceptedDomains;
  }
  return resources::kReceiveConnectors;
}

std::string ObjectId::toString() const {
  return std::string(kindName(kind)) + " " + ns + "/" + name;
}

std::string rfc3339(std::chrono::system_clock::time_point t) { return logfmt::utcTimestamp(t, 0); }

namespace {

constexpr size_t kMaxMessage = 8192;
constexpr size_t kMaxConditions = 32;

const Json& member(const Json& object, const char* key) {
  static const Json null;
  if (!object.is_object()) return null;
  auto it = object.find(key);
  return it == object.end() ? null : *it;
}

std::string str(const Json& v) { return v.is_string() ? v.get<std::string>() : std::string(); }

int64_t int64(const Json& v) {
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_unsigned()) return static_cast<int64_t>(v.get<uint64_t>());
  return 0;
}

// Condition reasons: ^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$ (the CRD's pattern).
std::string sanitizeReason(const std::string& reason) {
  std::string out;
  for (char c : reason) {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '_') out += c;
  }
  while (!out.empty() && !std::isalpha(static_cast<unsigned char>(out.front()))) out.erase(0, 1);
  return out.empty() ? "Invalid" : out;
}

// Condition types: a CamelCase name (the reason).
std::string sanitizeType(const std::string& type) {
  std::string out;
  for (char c : type) {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.') out += c;
  }
  while (!out.empty() && !std::isalnum(static_cast<unsigned char>(out.front()))) out.erase(0, 1);
  while (!out.empty() && !std::isalnum(static_cast<unsigned char>(out.back()))) out.pop_back();
  return out.empty() ? "Warning" : out.substr(0, 316);
}

std::string clipMessage(std::string message) {
  if (message.size() > kMaxMessage) {
    message.resize(kMaxMessage - 3);
    message += "...";
  }
  return message;
}

std::string fieldMessage(const policy::Diagnostic& d) {
  return d.field.empty() ? d.message : d.field + ": " + d.message;
}

using RefKey = std::tuple<std::string, std::string, std::string>;  // kind, ns, name

}  // namespace

ObservedObject observe(Kind kind, const Json& object) {
  ObservedObject o;
  o.id.kind = kind;
  const Json& md = member(object, "metadata");
  o.id.ns = str(member(md, "namespace"));
  o.id.name = str(member(md, "name"));
  o.generation = int64(member(md, "generation"));
  o.uid = str(member(md, "uid"));
  o.resourceVersion = str(member(md, "resourceVersion"));
  o.status = member(object, "status");
  return o;
}

Json slimObject(const Json& object) {
  const std::string kind = str(member(object, "kind"));
  Json slim = Json::object();
  slim["apiVersion"] = member(object, "apiVersion");
  slim["kind"] = kind;
  Json md = Json::object();
  const Json& srcMd = member(object, "metadata");
  for (const char* key : {"name", "namespace", "generation", "uid", "resourceVersion"}) {
    const Json& v = member(srcMd, key);
    if (!v.is_null()) md[key] = v;
  }
  slim["metadata"] = std::move(md);
  if (kind == "Secret") {
    for (const char* key : {"type", "data", "stringData"}) {
      const Json& v = member(object, key);
      if (!v.is_null()) slim[key] = v;
    }
  } else {
    const Json& spec = member(object, "spec");
    if (!spec.is_null()) slim["spec"] = spec;
  }
  return slim;
}

void decodeSlimObject(const std::string& manifest, const std::string& ns,
                      policy::ResourceSet& out) {
  policy::ManifestOptions options;
  options.defaultNamespace = ns;
  policy::decodeManifests(manifest, "kube-apiserver", out, options);
}

void decodeObject(const Json& object, policy::ResourceSet& out) {
  decodeSlimObject(slimObject(object).dump(), str(member(member(object, "metadata"), "namespace")),
                   out);
}

std::vector<std::string> referencedSecrets(const policy::ResourceSet& set) {
  std::set<std::string> names;
  for (const auto& c : set.connectors) {
    for (const std::string* s : c.secretNameFields()) {
      if (!s->empty()) names.insert(c.meta.ns + "/" + *s);
    }
  }
  return {names.begin(), names.end()};
}

namespace {

// No policy version in the messages: they would change with every policy change and make the
// operator rewrite every status each time.
Condition readyCondition(const ObjectStatus& st, const std::string& pool, const Rollout& r,
                         int64_t generation) {
  const std::string where = pool.empty() ? "" : " of pool " + pool;
  if (!st.accepted) {
    return {"Ready",    "False", "NotAccepted", "not enforced as written: see Accepted",
            generation, ""};
  }
  if (r.total == 0) {
    return {"Ready", "Unknown", "NoRelays", "no relay" + where + " is connected", generation, ""};
  }
  const std::string counts = std::to_string(r.applied) + "/" + std::to_string(r.total);
  if (r.rejected > 0) {
    return {"Ready",
            "False",
            "RelayRejected",
            clipMessage(
                std::to_string(r.rejected) + " relay(s)" + where +
                " rejected the policy with this generation and keep the previous one: " + r.error),
            generation,
            ""};
  }
  if (r.applied == r.total) {
    return {"Ready",    "True", "Applied", counts + " relays" + where + " run this generation",
            generation, ""};
  }
  return {"Ready",    "False", "Propagating", counts + " relays" + where + " run this generation",
          generation, ""};
}

}  // namespace

std::map<ObjectId, ObjectStatus> desiredStatuses(const std::vector<ObservedObject>& objects,
                                                 const policy::ResourceSet& set,
                                                 const policy::CompileResult& result,
                                                 const RolloutFn& rollout) {
  std::map<RefKey, std::vector<const policy::Diagnostic*>> errors, warnings;
  for (const auto& d : result.diagnostics) {
    if (d.object.name.empty()) continue;  // not attributable to one object
    RefKey key{d.object.kind, d.object.ns, d.object.name};
    (d.isError() ? errors : warnings)[key].push_back(&d);
  }
  std::map<std::pair<std::string, std::string>, const policy::ReceiveConnector*> connectors;
  for (const auto& c : set.connectors)
    connectors.emplace(std::make_pair(c.meta.ns, c.meta.name), &c);
  std::map<std::pair<std::string, std::string>, const policy::SenderPermission*> permissions;
  for (const auto& p : set.permissions) {
    permissions.emplace(std::make_pair(p.meta.ns, p.meta.name), &p);
  }
  const std::string version = result.snapshot ? result.snapshot->version() : "";

  std::map<ObjectId, ObjectStatus> out;
  for (const ObservedObject& o : objects) {
    const char* kind = kindName(o.id.kind);
    RefKey key{kind, o.id.ns, o.id.name};
    ObjectStatus st;
    st.observedGeneration = o.generation;
    st.policyVersion = o.compiledIn.empty() ? version : o.compiledIn;

    // Accepted.
    Condition accepted{"Accepted",   "True", "Compiled", "compiled into policy " + st.policyVersion,
                       o.generation, ""};
    const policy::CompiledConnector* compiled =
        o.id.kind == Kind::ReceiveConnector && result.snapshot
            ? result.snapshot->find(o.id.ns, o.id.name)
            : nullptr;
    auto errIt = errors.find(key);
    if (errIt != errors.end()) {
      std::string message;
      for (const auto* d : errIt->second)
        message += (message.empty() ? "" : "; ") + fieldMessage(*d);
      switch (o.id.kind) {
        case Kind::ReceiveConnector:
          message += compiled ? " (quarantined: clients it would serve get 421 4.3.5 until this "
                                "is fixed)"
                              : " (left out of the policy)";
          break;
        case Kind::SenderPermission: {
          auto p = permissions.find({o.id.ns, o.id.name});
          bool quarantines = p != permissions.end() && p->second->deny && p->second->meta.invalid;
          message += quarantines ? " (an invalid deny entry: its connector is quarantined)"
                                 : " (left out of the policy)";
          break;
        }
        case Kind::AcceptedDomain:
          message += " (left out of the policy)";
          break;
      }
      accepted.status = "False";
      accepted.reason = sanitizeReason(errIt->second.front()->reason);
      accepted.message = clipMessage(message);
    } else if (compiled && compiled->quarantined) {
      accepted.status = "False";
      accepted.reason = "Quarantined";
      accepted.message = clipMessage(compiled->quarantineReason +
                                     " (quarantined: clients it would serve get 421 4.3.5)");
    }
    st.accepted = accepted.status == "True";
    st.conditions.push_back(std::move(accepted));

    if (rollout) {
      // The relays that enforce this object: its connector's pool (AcceptedDomains: all).
      std::string pool;
      if (o.id.kind == Kind::ReceiveConnector) {
        auto c = connectors.find({o.id.ns, o.id.name});
        pool = c != connectors.end() ? c->second->relayPool : "default";
      } else if (o.id.kind == Kind::SenderPermission) {
        auto p = permissions.find({o.id.ns, o.id.name});
        auto c = p == permissions.end() ? connectors.end()
                                        : connectors.find({o.id.ns, p->second->connector});
        pool = c != connectors.end() ? c->second->relayPool : "default";
      }
      Rollout r = rollout(pool, o.compiledEpoch);
      st.relays = std::make_pair(r.total, r.applied);
      st.conditions.push_back(readyCondition(st, pool, r, o.generation));
    } else {
      st.conditions.push_back({"Ready", "Unknown", "NoRelays",
                               "policy distribution is off (kuberelay-operator --policy-listen)",
                               o.generation, ""});
    }

    // Warnings: the analyzer's, and the problems of the Secrets a connector references.
    std::map<std::string, std::string> byType;
    if (auto it = warnings.find(key); it != warnings.end()) {
      for (const auto* d : it->second) {
        std::string& m = byType[sanitizeType(d->reason)];
        m += (m.empty() ? "" : "; ") + fieldMessage(*d);
      }
    }
    if (o.id.kind == Kind::ReceiveConnector) {
      auto c = connectors.find({o.id.ns, o.id.name});
      if (c != connectors.end()) {
        std::set<std::string> secretNames;
        for (const std::string* s : c->second->secretNameFields()) {
          if (!s->empty()) secretNames.insert(*s);
        }
        for (const auto& secretName : secretNames) {
          for (auto* diags : {&errors, &warnings}) {
            auto it = diags->find(RefKey{"Secret", o.id.ns, secretName});
            if (it == diags->end()) continue;
            for (const auto* d : it->second) {
              std::string& m = byType[sanitizeType(d->reason)];
              m += (m.empty() ? "" : "; ") + ("Secret " + secretName + ": " + fieldMessage(*d));
            }
          }
        }
      }
    }
    for (auto& [type, message] : byType) {
      if (st.conditions.size() >= kMaxConditions) break;
      if (type == "Accepted" || type == "Ready") continue;
      st.conditions.push_back(
          {type, "True", sanitizeReason(type), clipMessage(message), o.generation, ""});
      ++st.warnings;
    }
    out.emplace(o.id, std::move(st));
  }
  return out;
}

namespace {

struct CurrentCondition {
  std::string status, reason, message, lastTransitionTime;
  int64_t observedGeneration = 0;
};

std::map<std::string, CurrentCondition> currentConditions(const Json& current) {
  std::map<std::string, CurrentCondition> out;
  const Json& list = member(current, "conditions");
  if (!list.is_array()) return out;
  for (const auto& c : list) {
    std::string type = str(member(c, "type"));
    if (type.empty()) continue;
    out[type] = {str(member(c, "status")), str(member(c, "reason")), str(member(c, "message")),
                 str(member(c, "lastTransitionTime")), int64(member(c, "observedGeneration"))};
  }
  return out;
}

bool isProblem(const Condition& c) {
  if (c.type == "Accepted") return c.status == "False";
  if (c.type == "Ready") return false;
  return c.status == "True";
}

}  // namespace

std::optional<Json> statusUpdate(const Json& current, const ObjectStatus& desired,
                                 const std::string& now, bool withPolicyVersion) {
  auto existing = currentConditions(current);
  bool same = int64(member(current, "observedGeneration")) == desired.observedGeneration &&
              member(current, "observedGeneration").is_number() &&
              existing.size() == desired.conditions.size();
  if (same && withPolicyVersion)
    same = str(member(current, "policyVersion")) == desired.policyVersion;
  if (same && desired.relays) {
    const Json& relays = member(current, "relays");
    same = int64(member(relays, "total")) == static_cast<int64_t>(desired.relays->first) &&
           int64(member(relays, "applied")) == static_cast<int64_t>(desired.relays->second) &&
           member(relays, "total").is_number();
  }
  if (same) {
    for (const auto& c : desired.conditions) {
      auto it = existing.find(c.type);
      if (it == existing.end() || it->second.status != c.status || it->second.reason != c.reason ||
          it->second.message != c.message ||
          it->second.observedGeneration != c.observedGeneration ||
          it->second.lastTransitionTime.empty()) {
        same = false;
        break;
      }
    }
  }
  if (same) return std::nullopt;

  Json conditions = Json::array();
  for (const auto& c : desired.conditions) {
    std::string since = now;
    if (auto it = existing.find(c.type); it != existing.end() && it->second.status == c.status &&
                                         !it->second.lastTransitionTime.empty()) {
      since = it->second.lastTransitionTime;
    }
    conditions.push_back({{"type", c.type},
                          {"status", c.status},
                          {"observedGeneration", c.observedGeneration},
                          {"lastTransitionTime", since},
                          {"reason", c.reason},
                          {"message", c.message}});
  }
  Json status = Json::object();
  status["observedGeneration"] = desired.observedGeneration;
  if (withPolicyVersion) status["policyVersion"] = desired.policyVersion;
  if (desired.relays) {
    status["relays"] = {{"total", desired.relays->first}, {"applied", desired.relays->second}};
  }
  status["conditions"] = std::move(conditions);
  return status;
}

std::vector<Condition> newProblems(const Json& current, const ObjectStatus& desired) {
  auto existing = currentConditions(current);
  std::vector<Condition> out;
  for (const auto& c : desired.conditions) {
    if (!isProblem(c)) continue;
    auto it = existing.find(c.type);
    if (it == existing.end() || it->second.status != c.status || it->second.reason != c.reason) {
      out.push_back(c);
    }
  }
  return out;
}

// ------------------------------------------------------------------------------- Reconciler

Reconciler::Reconciler(KubeApi& api, const ObjectSource& source, ReconcilerOptions options,
                       ReconcileObserver* observer)
    : api_(api), source_(source), options_(std::move(options)), observer_(observer) {}

void Reconciler::trigger() {
  {
    std::lock_guard lock(mutex_);
    dirty_ = true;
    if (!pendingSince_) pendingSince_ = std::chrono::steady_clock::now();
  }
  cv_.notify_all();
}

bool Reconciler::firstPassDone() const {
  std::lock_guard lock(mutex_);
  return firstPassDone_;
}

std::string Reconciler::policyVersion() const {
  std::lock_guard lock(mutex_);
  return policyVersion_;
}

const Reconciler::Decoded& Reconciler::decodeCached(const std::string& cacheKey, const Json& object,
                                                    const std::string& stamp) {
  auto it = decoded_.find(cacheKey);
  if (it != decoded_.end() && it->second.stamp == stamp) return it->second;
  Decoded d;
  d.stamp = stamp;
  const Json& md = member(object, "metadata");
  d.source = {str(member(object, "kind")), str(member(md, "namespace")), str(member(md, "name")),
              int64(member(md, "generation")), slimObject(object).dump()};
  decodeSlimObject(d.source.manifest, d.source.ns, d.set);
  auto& slot = decoded_[cacheKey];
  slot = std::move(d);
  return slot;
}

void Reconciler::emitEvents(const ObservedObject& object, const std::vector<Condition>& problems,
                            const std::string& now) {
  if (!options_.emitEvents) return;
  const ResourceType& type = resourceOf(object.id.kind);
  for (const auto& c : problems) {
    std::string message = c.message.size() > 1024 ? c.message.substr(0, 1021) + "..." : c.message;
    Json event = {
        {"apiVersion", "v1"},
        {"kind", "Event"},
        {"metadata", {{"generateName", object.id.name + "."}, {"namespace", object.id.ns}}},
        {"involvedObject",
         {{"apiVersion", type.apiVersion()},
          {"kind", type.kind},
          {"namespace", object.id.ns},
          {"name", object.id.name},
          {"uid", object.uid},
          {"resourceVersion", object.resourceVersion}}},
        {"reason", c.reason},
        {"message", message},
        {"type", "Warning"},
        {"source", {{"component", options_.component}}},
        {"reportingComponent", options_.component},
        {"reportingInstance", options_.instance},
        {"firstTimestamp", now},
        {"lastTimestamp", now},
        {"count", 1}};
    ApiResult r = api_.createEvent(object.id.ns, event);
    if (!r.ok()) {
      logWarn("cannot create event",
              {{"object", object.id.toString()}, {"reason", c.reason}, {"error", r.describe()}});
    }
  }
}

const char* Reconciler::writeStatus(const ObservedObject& object, const ObjectStatus& desired,
                                    const std::string& now) {
  const bool withVersion = options_.policyVersionField.count(object.id.kind) &&
                           options_.policyVersionField.at(object.id.kind);
  const std::string path = resourceOf(object.id.kind).objectPath(object.id.ns, object.id.name);
  Json current = object.status;
  std::string rv = object.resourceVersion;
  // Our own write that the cache has not caught up with yet.
  if (auto it = written_.find(object.id); it != written_.end()) {
    if (it->second.fromResourceVersion == rv) {
      current = it->second.status;
    } else {
      written_.erase(it);
    }
  }
  for (int attempt = 0; attempt <= options_.conflictRetries; ++attempt) {
    auto update = statusUpdate(current, desired, now, withVersion);
    if (!update) return "unchanged";
    auto problems = newProblems(current, desired);
    ApiResult r = api_.patchStatus(path, *update, rv);
    if (r.ok()) {
      written_[object.id] = Written{rv, *update};
      emitEvents(object, problems, now);
      logDebug("status written", {{"object", object.id.toString()}, {"resourceVersion", rv}});
      return "updated";
    }
    if (r.notFound()) return "gone";
    if (!r.conflict()) {
      logWarn("cannot write status", {{"object", object.id.toString()}, {"error", r.describe()}});
      return "error";
    }
    if (observer_) observer_->reconciled(kindName(object.id.kind), "conflict");
    ApiResult fresh = api_.get(path);
    if (fresh.notFound()) return "gone";
    if (!fresh.ok()) {
      logWarn("cannot re-read after a conflict",
              {{"object", object.id.toString()}, {"error", fresh.describe()}});
      return "error";
    }
    ObservedObject o = observe(object.id.kind, fresh.body);
    if (o.generation != desired.observedGeneration) {
      // The spec changed: the watch brings the new generation and the next pass handles it.
      return "conflict";
    }
    current = o.status;
    rv = o.resourceVersion;
  }
  logWarn("status write kept conflicting", {{"object", object.id.toString()}});
  return "error";
}

PassResult Reconciler::reconcileOnce() {
  PassResult pass;
  if (!source_.synced()) return pass;
  const auto started = std::chrono::steady_clock::now();
  pass.ran = true;
  std::chrono::steady_clock::time_point changedAt = started;
  {
    std::lock_guard lock(mutex_);
    if (pendingSince_) changedAt = *pendingSince_;
    pendingSince_.reset();
  }

  // Decode (cached per object: a custom resource is decoded again only when its generation
  // changes, a Secret when its resourceVersion does).
  std::vector<ObservedObject> observed;
  std::vector<const Decoded*> fragments;
  std::string fingerprint;
  std::set<std::string> seen;
  for (Kind kind : kAllKinds) {
    const char* name = kindName(kind);
    for (const auto& obj : source_.objects(name)) {
      ObservedObject o = observe(kind, *obj);
      if (o.id.name.empty()) continue;
      std::string cacheKey = std::string(name) + "/" + o.id.ns + "/" + o.id.name;
      std::string stamp = o.uid + "#" + std::to_string(o.generation);
      fragments.push_back(&decodeCached(cacheKey, *obj, stamp));
      fingerprint += cacheKey + "=" + stamp + "\n";
      seen.insert(cacheKey);
      observed.push_back(std::move(o));
    }
  }
  policy::ResourceSet connectorsOnly;
  for (const auto* f : fragments) {
    connectorsOnly.connectors.insert(connectorsOnly.connectors.end(), f->set.connectors.begin(),
                                     f->set.connectors.end());
  }
  std::set<std::string> wanted;
  for (auto& s : referencedSecrets(connectorsOnly)) wanted.insert(std::move(s));
  if (!wanted.empty()) {
    for (const auto& obj : source_.objects("Secret")) {
      const Json& md = member(*obj, "metadata");
      std::string key = str(member(md, "namespace")) + "/" + str(member(md, "name"));
      if (!wanted.count(key)) continue;
      std::string cacheKey = "Secret/" + key;
      std::string stamp = str(member(md, "uid")) + "#" + str(member(md, "resourceVersion"));
      fragments.push_back(&decodeCached(cacheKey, *obj, stamp));
      fingerprint += cacheKey + "=" + stamp + "\n";
      seen.insert(cacheKey);
    }
  }
  for (auto it = decoded_.begin(); it != decoded_.end();) {
    it = seen.count(it->first) ? std::next(it) : decoded_.erase(it);
  }

  // Compile when the inputs changed.
  if (!lastResult_ || fingerprint != lastFingerprint_) {
    policy::ResourceSet set;
    auto sources = std::make_shared<std::vector<PolicySourceObject>>();
    for (const auto* d : fragments) {
      const policy::ResourceSet& f = d->set;
      set.connectors.insert(set.connectors.end(), f.connectors.begin(), f.connectors.end());
      set.permissions.insert(set.permissions.end(), f.permissions.begin(), f.permissions.end());
      set.domains.insert(set.domains.end(), f.domains.begin(), f.domains.end());
      set.secrets.insert(set.secrets.end(), f.secrets.begin(), f.secrets.end());
      set.diagnostics.insert(set.diagnostics.end(), f.diagnostics.begin(), f.diagnostics.end());
      if (options_.publisher) sources->push_back(d->source);
    }
    lastResult_ = policy::compile(set);
    const uint64_t epoch =
        options_.publisher
            ? options_.publisher->publish(std::make_shared<const policy::ResourceSet>(set), sources,
                                          changedAt)
            : ++compiles_;
    for (auto& [key, d] : decoded_) {
      if (d.sinceEpoch == 0) {
        d.sinceEpoch = epoch;
        d.sinceVersion = lastResult_->snapshot->version();
      }
    }
    lastSet_ = std::move(set);
    lastFingerprint_ = fingerprint;
    pass.compiledAgain = true;
    const std::string version = lastResult_->snapshot->version();
    logInfo("compiled", {{"policyVersion", version},
                         {"connectors", std::to_string(lastSet_.connectors.size())},
                         {"permissions", std::to_string(lastSet_.permissions.size())},
                         {"domains", std::to_string(lastSet_.domains.size())},
                         {"secrets", std::to_string(lastSet_.secrets.size())},
                         {"errors", std::to_string(lastResult_->errorCount())},
                         {"warnings", std::to_string(lastResult_->warningCount())}});
    if (observer_) {
      observer_->compiled(version, lastResult_->errorCount(), lastResult_->warningCount());
    }
  }
  pass.policyVersion = lastResult_->snapshot->version();

  // Statuses.
  // Since when each object's current state is compiled in: its own change, or for a connector
  // the latest change of a Secret it references.
  for (ObservedObject& o : observed) {
    auto it = decoded_.find(std::string(kindName(o.id.kind)) + "/" + o.id.ns + "/" + o.id.name);
    if (it == decoded_.end()) continue;
    o.compiledEpoch = it->second.sinceEpoch;
    o.compiledIn = it->second.sinceVersion;
    if (o.id.kind != Kind::ReceiveConnector) continue;
    for (const auto& c : it->second.set.connectors) {
      for (const std::string* s : c.secretNameFields()) {
        if (s->empty()) continue;
        auto sec = decoded_.find("Secret/" + o.id.ns + "/" + *s);
        if (sec != decoded_.end() && sec->second.sinceEpoch > o.compiledEpoch) {
          o.compiledEpoch = sec->second.sinceEpoch;
          o.compiledIn = sec->second.sinceVersion;
        }
      }
    }
  }
  RolloutFn rollout;
  if (options_.publisher) {
    rollout = [p = options_.publisher](const std::string& pool, uint64_t since) {
      return p->rollout(pool, since);
    };
  }
  auto desired = desiredStatuses(observed, lastSet_, *lastResult_, rollout);
  const std::string now = rfc3339(options_.now());
  std::map<Kind, std::array<size_t, 3>> states;  // accepted, rejected, with warnings
  for (Kind kind : kAllKinds) states[kind] = {0, 0, 0};
  std::set<ObjectId> present;
  const bool leading = !options_.isLeader || options_.isLeader();
  if (!leading) written_.clear();  // what we wrote may be overwritten by the leader
  for (const ObservedObject& o : observed) {
    present.insert(o.id);
    const ObjectStatus& want = desired.at(o.id);
    auto& s = states[o.id.kind];
    ++s[want.accepted ? 0 : 1];
    if (want.warnings) ++s[2];
    ++pass.objects;
    if (!leading) continue;  // a standby replica computes, the leader writes
    const char* result = writeStatus(o, want, now);
    std::string_view r = result;
    if (r == "updated") {
      ++pass.updated;
    } else if (r == "unchanged") {
      ++pass.unchanged;
    } else if (r == "conflict") {
      ++pass.conflicts;
    } else if (r == "error") {
      ++pass.errors;
    }
    if (observer_ && r != "conflict") observer_->reconciled(kindName(o.id.kind), result);
  }
  for (auto it = written_.begin(); it != written_.end();) {
    it = present.count(it->first) ? std::next(it) : written_.erase(it);
  }
  if (observer_) {
    for (const auto& [kind, s] : states) observer_->objectStates(kindName(kind), s[0], s[1], s[2]);
    observer_->passDuration(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  }
  if (pass.updated || pass.errors || pass.conflicts || pass.compiledAgain) {
    logInfo("reconciled", {{"policyVersion", pass.policyVersion},
                           {"objects", std::to_string(pass.objects)},
                           {"updated", std::to_string(pass.updated)},
                           {"unchanged", std::to_string(pass.unchanged)},
                           {"conflicts", std::to_string(pass.conflicts)},
                           {"errors", std::to_string(pass.errors)}});
  }
  {
    std::lock_guard lock(mutex_);
    firstPassDone_ = true;
    policyVersion_ = pass.policyVersion;
  }
  return pass;
}

void Reconciler::run(Cancellation& cancel) {
  uint64_t hook = cancel.onCancel([this] {
    std::lock_guard lock(mutex_);
    cv_.notify_all();
  });
  int failures = 0;
  bool retrying = false;
  auto retryAt = std::chrono::steady_clock::now();
  while (!cancel.cancelled()) {
    {
      std::unique_lock lock(mutex_);
      auto ready = [&] { return dirty_ || cancel.cancelled(); };
      if (retrying) {
        cv_.wait_until(lock, retryAt, ready);
      } else {
        cv_.wait(lock, ready);
      }
      if (cancel.cancelled()) break;
    }
    if (!cancel.sleepFor(options_.debounce)) break;
    {
      std::lock_guard lock(mutex_);
      dirty_ = false;
    }
    PassResult pass;
    try {
      pass = reconcileOnce();
    } catch (const std::exception& e) {
      logError("reconcile pass failed", {{"error", e.what()}});
      pass.errors = 1;
    }
    if (pass.errors || pass.conflicts) {
      ++failures;
      auto delay = options_.initialRetry * (1LL << std::min(failures - 1, 16));
      if (delay > options_.maxRetry) delay = options_.maxRetry;
      retryAt = std::chrono::steady_clock::now() + delay;
      retrying = true;
    } else {
      failures = 0;
      retrying = false;
    }
  }
  cancel.remove(hook);
}

}  // namespace kuberelay::op
