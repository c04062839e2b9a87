// kuberelay-operator: reconciles ReceiveConnectors, SenderPermissions and AcceptedDomains
// against the Kubernetes API server (see reconciler.h for what it writes).
//
//   kuberelay-operator [--kubeconfig FILE] [--context NAME] [--namespace NS]...
//                      [--admin 127.0.0.1:9091] [--min-watch-timeout SECONDS] [--no-events]
//                      [--log-level debug|info|warn|error]
//                      [--leader-elect=true|false] [--leader-election-namespace NS]
//                      [--leader-election-id NAME] [--lease-duration 15] [--renew-deadline 10]
//                      [--retry-period 2]
//                      [--policy-listen ADDR (--policy-tls-cert F --policy-tls-key F
//                       --policy-client-ca F | --policy-insecure)]
//
// Informers (list-then-watch) for the three kinds and Secrets, in every namespace or in each
// --namespace; one reconcile loop; /healthz, /readyz and /metrics on --admin. With
// --policy-listen, the gRPC policy channel relays subscribe to (policy_server.h), and each
// object's Ready condition and status.relays follow the relays' ACKs and NACKs. SIGTERM or
// SIGINT: stop watching, finish the pass in progress, close the relays' streams, exit 0.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "admin_server.h"
#include "distribution.h"
#include "informer.h"
#include "kube/cpprest_kube_api.h"
#include "kube/kubeconfig.h"
#include "leader.h"
#include "log.h"
#include "metrics.h"
#include "policy_server.h"
#include "reconciler.h"

using namespace kuberelay::op;

namespace {

class InformerSource final : public ObjectSource {
public:
  void add(const std::string& kind, Informer* informer) { byKind_[kind].push_back(informer); }

  std::vector<std::shared_ptr<const Json>> objects(const std::string& kind) const override {
    std::vector<std::shared_ptr<const Json>> out;
    auto it = byKind_.find(kind);
    if (it == byKind_.end()) return out;
    for (const Informer* informer : it->second) {
      auto part = informer->list();
      out.insert(out.end(), part.begin(), part.end());
    }
    return out;
  }

  bool synced() const override {
    for (const auto& [kind, list] : byKind_) {
      for (const Informer* informer : list) {
        if (!informer->synced()) return false;
      }
    }
    return true;
  }

private:
  std::map<std::string, std::vector<Informer*>> byKind_;
};

// Whether the CRD's status schema has `field` (a structural schema prunes unknown fields).
std::optional<bool> statusHasField(KubeApi& api, const ResourceType& type,
                                   const std::string& field) {
  ApiResult r = api.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/" + type.plural +
                        "." + type.group);
  if (!r.ok()) return std::nullopt;
  const Json& versions = r.body["spec"]["versions"];
  if (!versions.is_array()) return std::nullopt;
  for (const auto& v : versions) {
    if (v.value("name", "") != type.version) continue;
    auto ptr = Json::json_pointer("/schema/openAPIV3Schema/properties/status/properties/" + field);
    return v.contains(ptr);
  }
  return std::nullopt;
}

std::string hostName() {
  if (const char* pod = std::getenv("POD_NAME"); pod && *pod) return pod;
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) == 0 && buf[0]) return buf;
  return "kuberelay-operator";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kuberelay-operator: reconciles KubeRelay's custom resources"};
  std::string kubeconfig, context, admin = "127.0.0.1:9091", logLevel = "info";
  std::vector<std::string> namespaces;
  int minWatchTimeout = 300;
  bool noEvents = false;
  app.add_option("--kubeconfig", kubeconfig,
                 "kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config)");
  app.add_option("--context", context, "kubeconfig context (default: current-context)");
  app.add_option("--namespace", namespaces, "namespace to watch (repeatable; default: all)");
  app.add_option("--admin", admin, "admin HTTP address (/healthz, /readyz, /metrics)");
  app.add_option("--min-watch-timeout", minWatchTimeout,
                 "watch timeout in seconds: each watch lasts a random time in [T, 2T]")
      ->check(CLI::Range(1, 86400));
  app.add_flag("--no-events", noEvents, "do not create Kubernetes Events");
  PolicyServerOptions policyOptions;
  std::string policyListen;
  app.add_option("--policy-listen", policyListen,
                 "address:port of the gRPC policy channel for relays (default: off)");
  app.add_option("--policy-tls-cert", policyOptions.certFile, "policy channel: server certificate");
  app.add_option("--policy-tls-key", policyOptions.keyFile, "policy channel: server key");
  app.add_option("--policy-client-ca", policyOptions.clientCaFile,
                 "policy channel: CA that signed the relays' client certificates");
  app.add_flag("--policy-insecure", policyOptions.insecure,
               "policy channel without TLS (local use only)");
  bool leaderElect = true;
  LeaderOptions leaderOptions;
  const char* podNamespace = std::getenv("POD_NAMESPACE");
  if (podNamespace && *podNamespace) leaderOptions.ns = podNamespace;
  double leaseSeconds = 15, renewSeconds = 10, retrySeconds = 2;
  app.add_option("--leader-elect", leaderElect,
                 "elect a leader with a Lease: only it writes status and serves relays");
  app.add_option("--leader-election-namespace", leaderOptions.ns,
                 "namespace of the Lease (default: $POD_NAMESPACE, else default)");
  app.add_option("--leader-election-id", leaderOptions.name, "name of the Lease");
  app.add_option("--lease-duration", leaseSeconds, "seconds a standby waits before taking over");
  app.add_option("--renew-deadline", renewSeconds, "seconds the leader may fail to renew");
  app.add_option("--retry-period", retrySeconds, "seconds between attempts");
  app.add_option("--log-level", logLevel, "debug, info, warn or error")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}));
  CLI11_PARSE(app, argc, argv);
  setLogLevel(logLevel == "debug"   ? LogLevel::Debug
              : logLevel == "warn"  ? LogLevel::Warn
              : logLevel == "error" ? LogLevel::Error
                                    : LogLevel::Info);

  // Signals are taken by sigwait on the main thread; every thread started below inherits the
  // blocked mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  std::unique_ptr<KubeApi> api;
  ClusterConfig cluster;
  try {
    cluster = resolveClusterConfig(kubeconfig, context);
    api = makeCpprestKubeApi(cluster);
  } catch (const std::exception& e) {
    logError("cannot configure the API client", {{"error", e.what()}});
    return 2;
  }
  // Each namespace once; an empty one (or none) means every namespace.
  std::sort(namespaces.begin(), namespaces.end());
  namespaces.erase(std::unique(namespaces.begin(), namespaces.end()), namespaces.end());
  if (namespaces.empty() || namespaces.front().empty()) namespaces = {""};
  std::string nsList;
  for (const auto& ns : namespaces) nsList += (nsList.empty() ? "" : ",") + (ns.empty() ? "*" : ns);
  logInfo("starting",
          {{"server", cluster.server}, {"config", cluster.source}, {"namespaces", nsList}});

  Metrics metrics;
  ReconcilerOptions ropts;
  ropts.emitEvents = !noEvents;
  ropts.instance = hostName();
  for (Kind kind : kAllKinds) {
    if (auto has = statusHasField(*api, resourceOf(kind), "policyVersion")) {
      ropts.policyVersionField[kind] = *has;
    }
    logInfo("status schema", {{"kind", kindName(kind)},
                              {"policyVersion", ropts.policyVersionField[kind] ? "yes" : "no"}});
  }

  InformerSource source;
  PolicyDistributor distributor(&metrics);
  if (!policyListen.empty()) ropts.publisher = &distributor;
  auto toMs = [](double s) { return std::chrono::milliseconds(static_cast<int64_t>(s * 1000)); };
  leaderOptions.leaseDuration = toMs(leaseSeconds);
  leaderOptions.renewDeadline = toMs(renewSeconds);
  leaderOptions.retryPeriod = toMs(retrySeconds);
  leaderOptions.identity =
      hostName() + "_" + std::to_string(::getpid()) + "_" +
      std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 100000);
  Reconciler* reconcilerPtr = nullptr;
  LeaderElector elector(*api, leaderOptions, [&metrics, &reconcilerPtr](bool leading) {
    metrics.leader(leading);
    if (reconcilerPtr) reconcilerPtr->trigger();  // a new leader writes what is due at once
  });
  metrics.leader(!leaderElect);
  if (leaderElect) {
    ropts.isLeader = [&elector] { return elector.isLeader(); };
    policyOptions.serving = [&elector] { return elector.isLeader(); };
  }
  Reconciler reconciler(*api, source, ropts, &metrics);
  reconcilerPtr = &reconciler;
  distributor.onRolloutChange([&reconciler] { reconciler.trigger(); });
  std::unique_ptr<PolicyServer> policyServer;
  if (!policyListen.empty()) {
    policyOptions.listen = policyListen;
    policyServer = std::make_unique<PolicyServer>(distributor, policyOptions, &metrics);
    try {
      policyServer->start();
    } catch (const std::exception& e) {
      logError("cannot start the policy channel", {{"error", e.what()}});
      return 2;
    }
    logInfo("policy channel listening", {{"address", policyListen},
                                         {"port", std::to_string(policyServer->port())},
                                         {"tls", policyOptions.insecure ? "off" : "mutual"}});
  }
  std::vector<std::unique_ptr<Informer>> informers;
  std::vector<ResourceType> types = {resources::kReceiveConnectors, resources::kSenderPermissions,
                                     resources::kAcceptedDomains, resources::kSecrets};
  for (const auto& type : types) {
    for (const auto& ns : namespaces) {
      InformerOptions io;
      io.type = type;
      io.ns = ns;
      io.minWatchTimeout = std::chrono::seconds(minWatchTimeout);
      if (type.kind == "Secret") {
        // Never needed, often large and many.
        io.fieldSelector = "type!=helm.sh/release.v1,type!=kubernetes.io/service-account-token";
      }
      auto informer = std::make_unique<Informer>(*api, io);
      informer->setListener(
          [&reconciler](ChangeType, const std::string&) { reconciler.trigger(); });
      std::string kind = type.kind;
      informer->setRestartListener(
          [&metrics, kind](const char* reason) { metrics.watchRestart(kind, reason); });
      source.add(type.kind, informer.get());
      informers.push_back(std::move(informer));
    }
  }

  AdminServer adminServer(admin, [&](const std::string&, const std::string& path) {
    if (path == "/healthz" || path == "/livez")
      return AdminResponse{200, "text/plain; charset=utf-8", "ok\n"};
    if (path == "/readyz") {
      bool ready = source.synced() && reconciler.firstPassDone();
      return ready ? AdminResponse{200, "text/plain; charset=utf-8", "ok\n"}
                   : AdminResponse{503, "text/plain; charset=utf-8", "caches not synced yet\n"};
    }
    if (path == "/metrics") {
      return AdminResponse{200, "text/plain; version=0.0.4; charset=utf-8", metrics.render()};
    }
    return AdminResponse{404, "text/plain; charset=utf-8", "not found\n"};
  });
  try {
    adminServer.start();
  } catch (const std::exception& e) {
    logError("cannot start the admin server", {{"error", e.what()}});
    return 2;
  }
  logInfo("admin server listening",
          {{"address", admin}, {"port", std::to_string(adminServer.port())}});

  Cancellation cancel;
  std::mutex doneMutex;
  std::condition_variable doneCv;
  size_t running = 0;
  std::vector<std::thread> threads;
  auto spawn = [&](std::function<void()> body) {
    {
      std::lock_guard lock(doneMutex);
      ++running;
    }
    threads.emplace_back([&, body = std::move(body)] {
      try {
        body();
      } catch (const std::exception& e) {
        logError("worker failed", {{"error", e.what()}});
      }
      std::lock_guard lock(doneMutex);
      --running;
      doneCv.notify_all();
    });
  };
  for (auto& informer : informers) spawn([&cancel, inf = informer.get()] { inf->run(cancel); });
  spawn([&] { reconciler.run(cancel); });
  if (leaderElect) {
    logInfo("leader election", {{"lease", leaderOptions.ns + "/" + leaderOptions.name},
                                {"identity", leaderOptions.identity}});
    spawn([&] { elector.run(cancel); });  // releases the Lease when cancelled
  }

  int sig = 0;
  sigwait(&signals, &sig);
  logInfo("stopping", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
  cancel.cancel();
  if (policyServer) policyServer->stop();
  bool finished;
  {
    std::unique_lock lock(doneMutex);
    finished = doneCv.wait_for(lock, std::chrono::seconds(20), [&] { return running == 0; });
  }
  adminServer.stop();
  if (!finished) {
    logError("workers did not stop within 20 s: exiting anyway");
    std::_Exit(1);
  }
  for (auto& t : threads) t.join();
  logInfo("stopped");
  return 0;
}
