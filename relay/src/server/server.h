// NAME
//   server.h - the relay process: listeners, sessions, policy reloads, admin endpoints
// DESCRIPTION
//   One io_context thread runs every connection as a coroutine: it feeds the pure SMTP session
//   (kuberelay/smtp/session.h) and carries out what it asks: write replies, tarpit, STARTTLS,
//   verify a password (on a small thread pool: crypt is slow), forward to the next hop, close.
//   Listeners follow the policy: a reload that adds or removes a binding opens or closes its
//   socket. A policy that cannot be prepared (a TLS key OpenSSL refuses, a file that does not
//   parse) is rejected and the last good one stays in force; with none yet, clients get
//   421 4.3.2 and /readyz says 503.
//   The policy comes from a directory (local mode, reloaded when a file changes) or from the
//   operator (cluster mode, control_plane_client.h: snapshots are staged on the client's
//   thread and swapped in on the io thread; an unreachable operator changes nothing).
#pragma once

#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <asio/thread_pool.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "control_plane_client.h"
#include "forwarder.h"
#include "metrics.h"
#include "policy_store.h"
#include "protocol_log.h"
#include "refusals.h"

namespace kuberelay::relay {

struct RelayOptions {
  std::filesystem::path manifests;  // local mode: the directory of YAML/JSON manifests
  // Cluster mode (instead of `manifests`): the operator's policy stream. Its pool is relayPool.
  std::optional<ControlPlaneOptions> controlPlane;
  std::string relayPool = "default";
  // Listened on (any IPv4 address) while no policy is in force, so that clients get 421 4.3.2
  // instead of a refused connection; the first policy's bindings replace them.
  std::vector<uint16_t> standbyPorts;
  // Added to every listening port (bindings and standby ports), so that several relays can
  // share one host in tests; sessions still see the policy's port.
  uint16_t portOffset = 0;
  std::string hostName;  // EHLO / banner name; default: the machine's host name
  std::string adminAddress = "127.0.0.1:9090";
  std::chrono::milliseconds reloadInterval{1000};
  std::chrono::milliseconds drainTimeout{30000};
  std::chrono::milliseconds nextHopTimeout{60000};
  NextHopPool::Options nextHopPool;
  std::filesystem::path protocolLogDir;  // empty: protocol log lines go to standard output
};

class Relay {
public:
  Relay(asio::io_context& io, RelayOptions options);
  ~Relay();
  // Loads the policy, opens listeners and the admin port. Throws on an unusable admin address.
  void start();
  // Stops accepting and turns /readyz false; idle sessions and new commands get 421 4.3.2,
  // transactions in flight finish (up to drainTimeout), then the io_context stops. A second
  // call ends everything at once.
  void drain();

  // For the admin server and tests.
  // A policy without a connector for this relay's pool serves no one: not ready either.
  bool ready() const {
    auto p = store_.current();
    return p && !p->snapshot->listeners().empty() && !draining_ && listenFailures_ == 0;
  }
  Metrics& metrics() { return metrics_; }
  PolicyStore& store() { return store_; }
  uint16_t adminPort() const { return adminPort_; }
  // GET /explain?from=IP&port=N&...: the JSON explanation against the policy in force.
  std::optional<std::string> explainFromQuery(std::string_view query) const;

  struct ListenerState;
  struct Counters;
  class Connection;

private:
  void reload();
  // Cluster mode, on the control-plane thread: check and prepare a snapshot from the operator.
  StagedSnapshot stage(const ReceivedSnapshot& received);
  void applyPolicy(LoadedPolicyPtr policy);
  void syncListeners(const policy::Snapshot& snapshot);
  // Opens a listener keyed by `text` (the binding as the policy writes it); false on failure.
  // A standby listener serves only until the first policy (see RelayOptions::standbyPorts).
  bool openListener(const std::string& text, const policy::Binding& binding, bool implicitTls,
                    bool standby);
  asio::awaitable<void> acceptLoop(std::shared_ptr<ListenerState> listener);
  asio::awaitable<void> reloadLoop();
  asio::awaitable<void> adminLoop();
  asio::awaitable<void> adminRequest(std::shared_ptr<asio::ip::tcp::socket> socket);
  asio::awaitable<void> drainLoop();

  asio::io_context& io_;
  RelayOptions options_;
  Metrics metrics_;
  NextHopPool nextHops_;
  PolicyStore store_;
  std::unique_ptr<ProtocolLog> protocolLog_;
  RecentRefusals refusals_;  // the last refused sessions, for /refusals
  std::optional<ManifestDirectory> manifests_;
  asio::thread_pool blocking_{2};
  std::map<std::string, std::shared_ptr<ListenerState>> listeners_;  // by binding text
  std::vector<std::weak_ptr<Connection>> live_;                      // for draining
  std::unique_ptr<Counters> counters_;
  std::unique_ptr<asio::ip::tcp::acceptor> admin_;
  uint16_t adminPort_ = 0;
  size_t listenFailures_ = 0;  // bindings that could not be opened; retried on every reload tick
  std::atomic<bool> draining_{false};
  asio::steady_timer reloadTimer_;
  std::unique_ptr<ControlPlaneClient> controlPlane_;  // cluster mode; stopped first on exit
};

}  // namespace kuberelay::relay
