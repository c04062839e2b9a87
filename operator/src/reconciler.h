// NAME
//   reconciler.h - from the informer caches to each object's status
// DESCRIPTION
//   Level-based and idempotent (style.md §3): a pass never looks at what changed, only at what
//   is. It decodes every cached ReceiveConnector, SenderPermission and AcceptedDomain, and the
//   Secrets the connectors reference, into a policy::ResourceSet (policy::decodeManifests on each
//   object's JSON), compiles it (the same deterministic snapshot on every replica), computes
//   each object's desired status and writes it through the /status subresource (JSON merge
//   patch with the object's resourceVersion as precondition) only when it differs from the
//   current one. A 409 Conflict re-reads the object and tries again.
//
//   Desired status (desiredStatuses, a pure function):
//     observedGeneration  metadata.generation of the compiled object
//     policyVersion       the snapshot's version (kinds whose CRD schema has the field)
//     conditions          Accepted  True  Compiled      "part of policy sha256:..."
//                                   False <reason>      every error as "<field path>: <message>"
//                                   False Quarantined   a connector quarantined by another object
//                         Ready     Unknown NoRelays    (until policy distribution exists)
//                         <Warning> True  <Warning>     one per analyzer reason (OpenRelay, ...)
//                                                       and per problem of a referenced Secret
//   statusUpdate() keeps the lastTransitionTime of a condition whose status did not change and
//   ignores lastTransitionTime when comparing, so an unchanged object is never written.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "kuberelay/operator/kube_api.h"
#include "kuberelay/policy/compiler.h"
#include "kuberelay/policy/model.h"

namespace kuberelay::op {

// The kinds whose status the operator writes.
enum class Kind { ReceiveConnector, SenderPermission, AcceptedDomain };
inline constexpr Kind kAllKinds[] = {Kind::ReceiveConnector, Kind::SenderPermission,
                                     Kind::AcceptedDomain};
const char* kindName(Kind kind);
const ResourceType& resourceOf(Kind kind);

struct ObjectId {
  Kind kind = Kind::ReceiveConnector;
  std::string ns;
  std::string name;
  friend auto operator<=>(const ObjectId&, const ObjectId&) = default;
  friend bool operator==(const ObjectId&, const ObjectId&) = default;
  std::string toString() const;  // "ReceiveConnector mail/anon-relay"
};

struct Condition {
  std::string type;
  std::string status;  // "True", "False", "Unknown"
  std::string reason;
  std::string message;
  int64_t observedGeneration = 0;
  std::string lastTransitionTime;  // RFC 3339; empty in desired statuses
};

// How far one object's current generation has reached the relays of its pool.
struct Rollout {
  size_t total = 0;     // relays of the pool connected now
  size_t applied = 0;   // ... running a policy that contains it
  size_t rejected = 0;  // ... that NACKed the pool's current policy and run an older one
  std::string error;    // one of the NACK messages
};
// pool "" asks about every relay (AcceptedDomains are part of every pool's snapshot); since:
// the publish (epoch) that first contained the object's current generation.
using RolloutFn = std::function<Rollout(const std::string& pool, uint64_t since)>;

struct ObjectStatus {
  int64_t observedGeneration = 0;
  std::string policyVersion;
  std::optional<std::pair<size_t, size_t>> relays;  // status.relays {total, applied}
  std::vector<Condition> conditions;                // Accepted, Ready, then warnings by type
  bool accepted = false;
  size_t warnings = 0;
};

// One object as the reconciler sees it in a cache.
struct ObservedObject {
  ObjectId id;
  int64_t generation = 0;
  std::string uid;
  std::string resourceVersion;
  Json status;  // the current .status (null when absent)
  // The first compiled policy (version, and its publish epoch) that contains this generation
  // (and, for a connector, the current data of its Secrets). Unchanged objects keep reporting
  // it when others change, so a change rewrites the statuses of what changed, not of all.
  std::string compiledIn;
  uint64_t compiledEpoch = 0;
};

ObservedObject observe(Kind kind, const Json& object);

// Decodes one cached object (a ReceiveConnector, SenderPermission, AcceptedDomain or Secret)
// into `out`, through the policy library's manifest decoder. Only the fields the compiler reads
// are passed on (no status, managedFields, annotations).
void decodeObject(const Json& object, policy::ResourceSet& out);
// The part of an object the compiler reads (apiVersion, kind, metadata name/namespace/
// generation/uid/resourceVersion, spec or type/data/stringData): what decodeObject decodes and
// what the policy channel ships to relays, who decode it with decodeSlimObject.
Json slimObject(const Json& object);
void decodeSlimObject(const std::string& manifest, const std::string& ns, policy::ResourceSet& out);

// The Secrets a set of connectors references ("namespace/name").
std::vector<std::string> referencedSecrets(const policy::ResourceSet& set);

// Pure: every object's desired status. `objects` are the objects to report on (each has been
// decoded into `set`, which `result` was compiled from).
// With `rollout` (policy distribution on), Ready and status.relays say how many relays of the
// object's pool run the current policy; without it, Ready is Unknown (NoRelays).
std::map<ObjectId, ObjectStatus> desiredStatuses(const std::vector<ObservedObject>& objects,
                                                 const policy::ResourceSet& set,
                                                 const policy::CompileResult& result,
                                                 const RolloutFn& rollout = {});

// Pure: the status to write (observedGeneration, policyVersion when withPolicyVersion,
// conditions with lastTransitionTime kept or set to `now`), or nullopt when `current` already
// says the same (lastTransitionTime ignored).
std::optional<Json> statusUpdate(const Json& current, const ObjectStatus& desired,
                                 const std::string& now, bool withPolicyVersion);

// Conditions of `desired` that are problems (Accepted=False, warning=True) and were not in
// `current` with the same status and reason: each becomes a Warning Event.
std::vector<Condition> newProblems(const Json& current, const ObjectStatus& desired);

// RFC 3339 in UTC, seconds precision ("2025-01-02T03:04:05Z"), as metav1.Time.
std::string rfc3339(std::chrono::system_clock::time_point t);

// What the reconciler reads: the informer caches.
class ObjectSource {
public:
  virtual ~ObjectSource() = default;
  // Every cached object of a kind: "ReceiveConnector", "SenderPermission", "AcceptedDomain",
  // "Secret".
  virtual std::vector<std::shared_ptr<const Json>> objects(const std::string& kind) const = 0;
  // True once every cache has completed its first list.
  virtual bool synced() const = 0;
};

// One policy object as the relays receive it.
struct PolicySourceObject {
  std::string kind, ns, name;
  int64_t generation = 0;
  std::string manifest;  // slimObject(...).dump()
};

// Where compiled policy goes (the policy distributor), and how far it got.
class PolicyPublisher {
public:
  virtual ~PolicyPublisher() = default;
  // A new policy: every decoded object (the reconciler's whole set) with its manifest.
  // changedAt: when the first change it contains was observed (for propagation times).
  // Returns the publish's epoch (increasing).
  virtual uint64_t publish(std::shared_ptr<const policy::ResourceSet> set,
                           std::shared_ptr<const std::vector<PolicySourceObject>> objects,
                           std::chrono::steady_clock::time_point changedAt) = 0;
  virtual Rollout rollout(const std::string& pool, uint64_t since) const = 0;
};

// Where the reconciler reports (metrics); every method is optional to implement.
class ReconcileObserver {
public:
  virtual ~ReconcileObserver() = default;
  // result: "updated", "unchanged", "conflict", "error", "gone"
  virtual void reconciled(const char* /*kind*/, const char* /*result*/) {}
  virtual void objectStates(const char* /*kind*/, size_t /*accepted*/, size_t /*rejected*/,
                            size_t /*withWarnings*/) {}
  virtual void passDuration(double /*seconds*/) {}
  virtual void compiled(const std::string& /*version*/, size_t /*errors*/, size_t /*warnings*/) {}
};

struct ReconcilerOptions {
  std::chrono::milliseconds debounce{200};       // coalesce a burst of watch events into one pass
  std::chrono::milliseconds initialRetry{1000};  // after failed writes, doubling ...
  std::chrono::milliseconds maxRetry{60000};     // ... up to this
  int conflictRetries = 5;
  bool emitEvents = true;
  std::string component = "kuberelay-operator";
  std::string instance;  // reportingInstance of Events (host name)
  // Kinds whose status schema has policyVersion (structural schemas prune unknown fields: writing
  // it anyway would make every pass see a difference).
  std::map<Kind, bool> policyVersionField = {{Kind::ReceiveConnector, true},
                                             {Kind::SenderPermission, false},
                                             {Kind::AcceptedDomain, false}};
  PolicyPublisher* publisher = nullptr;  // policy distribution; null: off
  std::function<bool()> isLeader;        // unset: always writes; false: compute, do not write
  std::function<std::chrono::system_clock::time_point()> now = [] {
    return std::chrono::system_clock::now();
  };
};

struct PassResult {
  bool ran = false;  // false: the caches were not synced yet
  bool compiledAgain = false;
  std::string policyVersion;
  size_t objects = 0, updated = 0, unchanged = 0, conflicts = 0, errors = 0;
};

class Reconciler {
public:
  Reconciler(KubeApi& api, const ObjectSource& source, ReconcilerOptions options = {},
             ReconcileObserver* observer = nullptr);

  // Something changed: run a pass soon (cheap, from any thread).
  void trigger();
  // Passes until cancelled: after each trigger (debounced), and again with backoff while
  // writes fail.
  void run(Cancellation& cancel);
  // One pass, synchronously.
  PassResult reconcileOnce();

  bool firstPassDone() const;
  std::string policyVersion() const;

private:
  struct Decoded {
    std::string stamp;  // uid + generation (custom resources) or uid + resourceVersion (Secrets)
    policy::ResourceSet set;
    PolicySourceObject source;
    uint64_t sinceEpoch = 0;  // 0 until compiled (see ObservedObject::compiledIn)
    std::string sinceVersion;
  };
  struct Written {
    std::string fromResourceVersion;  // the cache still shows this version: use `status`
    Json status;
  };

  const Decoded& decodeCached(const std::string& cacheKey, const Json& object,
                              const std::string& stamp);
  // Writes one object's status; returns the result label.
  const char* writeStatus(const ObservedObject& object, const ObjectStatus& desired,
                          const std::string& now);
  void emitEvents(const ObservedObject& object, const std::vector<Condition>& problems,
                  const std::string& now);

  KubeApi& api_;
  const ObjectSource& source_;
  ReconcilerOptions options_;
  ReconcileObserver* observer_;

  std::map<std::string, Decoded> decoded_;  // "Kind/ns/name"
  std::string lastFingerprint_;
  uint64_t compiles_ = 0;  // the epoch when there is no publisher
  std::optional<policy::CompileResult> lastResult_;
  policy::ResourceSet lastSet_;
  std::map<ObjectId, Written> written_;

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  bool dirty_ = true;
  // The first trigger since the last pass: when the changes a pass compiles were observed.
  std::optional<std::chrono::steady_clock::time_point> pendingSince_;
  bool firstPassDone_ = false;
  std::string policyVersion_;
};

}  // namespace kuberelay::op
