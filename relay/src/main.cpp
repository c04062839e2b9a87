// NAME
//   kuberelay-relay - the KubeRelay SMTP relay
// SYNOPSIS
//   kuberelay-relay --manifests DIR [options]
//   kuberelay-relay --control-plane HOST:PORT [--pool default] [--pod-name NAME]
//                   (--control-plane-ca FILE --control-plane-cert FILE --control-plane-key FILE
//                    | --control-plane-insecure) [options]
//   options: [--admin 127.0.0.1:9090] [--hostname NAME] [--drain-timeout 30]
//            [--next-hop-timeout 60] [--next-hop-idle-timeout 10] [--next-hop-max-idle 32]
//            [--protocol-log-dir DIR] [--standby-ports 25,587] [--port-offset 0]
// DESCRIPTION
//   Local mode (--manifests): enforces the ReceiveConnectors, SenderPermissions and
//   AcceptedDomains (and the Secrets they reference) found in DIR, reloading when a file
//   changes. A broken edit keeps the last good policy in force.
//   Cluster mode (--control-plane): subscribes to the operator's policy stream (gRPC, mutual
//   TLS unless --control-plane-insecure) and enforces the snapshots it sends for this relay's
//   pool. Until the first one, /readyz is 503 and clients get 421 4.3.2 on the --standby-ports
//   (nothing else listens yet); when the operator is unreachable the last snapshot applied
//   stays in force.
//   SIGTERM drains (stop accepting, let sessions finish); a second SIGTERM or SIGINT stops at
//   once.
#include <unistd.h>
#include <CLI/CLI.hpp>
#include <algorithm>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <vector>

#include "server/log.h"
#include "server/server.h"

int main(int argc, char** argv) {
  using namespace kuberelay::relay;
  CLI::App app{"KubeRelay SMTP relay"};
  RelayOptions options;
  std::string manifests;
  int drainSeconds = 30;
  int nextHopTimeout = 60;
  auto* manifestsOption =
      app.add_option("--manifests", manifests, "local mode: directory of policy manifests");
  ControlPlaneOptions controlPlane;
  auto* controlPlaneOption = app.add_option("--control-plane", controlPlane.target,
                                            "cluster mode: the operator's policy service");
  manifestsOption->excludes(controlPlaneOption);
  app.add_option("--admin", options.adminAddress, "address:port of /metrics, /healthz, /readyz");
  app.add_option("--hostname", options.hostName, "name in the banner, EHLO and Received headers");
  app.add_option("--pool,--relay-pool", options.relayPool, "serve only this pool's connectors");
  std::vector<int> standbyPorts;
  app.add_option("--standby-ports", standbyPorts,
                 "ports to answer 421 4.3.2 on until a policy is in force (comma-separated)")
      ->delimiter(',')
      ->check(CLI::Range(1, 65535));
  app.add_option("--port-offset", options.portOffset,
                 "added to every listening port (several relays on one host, for tests)")
      ->check(CLI::Range(0, 65535));
  app.add_option("--pod-name", controlPlane.podName,
                 "this relay's name to the operator (default: $POD_NAME, else the host name)");
  std::string caFile, certFile, keyFile;
  app.add_option("--control-plane-ca", caFile, "CA certificate of the operator (PEM)");
  app.add_option("--control-plane-cert", certFile, "this relay's client certificate (PEM)");
  app.add_option("--control-plane-key", keyFile, "this relay's client key (PEM)");
  app.add_flag("--control-plane-insecure", controlPlane.insecure,
               "plaintext to the operator, no authentication (local use only)");
  app.add_option("--drain-timeout", drainSeconds, "seconds to let sessions finish on SIGTERM");
  app.add_option("--next-hop-timeout", nextHopTimeout, "seconds per next-hop command");
  double nextHopIdle = 10;
  app.add_option("--next-hop-idle-timeout", nextHopIdle,
                 "seconds an idle next-hop session is kept for reuse (0: no reuse)");
  app.add_option("--next-hop-max-idle", options.nextHopPool.maxIdlePerKey,
                 "idle next-hop sessions kept per smarthost");
  std::string protocolLogDir;
  app.add_option("--protocol-log-dir", protocolLogDir,
                 "directory for RECV*.log protocol logs of Verbose connectors (default: stdout)");
  CLI11_PARSE(app, argc, argv);
  if (manifests.empty() == controlPlane.target.empty()) {
    std::cerr << "kuberelay-relay: exactly one of --manifests DIR (local mode) and "
                 "--control-plane HOST:PORT (cluster mode) is required\n";
    return 2;
  }
  if (!controlPlane.target.empty()) {
    std::string missing;
    int given = 0;
    for (auto [flag, value] :
         {std::pair{"--control-plane-ca", &caFile}, std::pair{"--control-plane-cert", &certFile},
          std::pair{"--control-plane-key", &keyFile}}) {
      if (!value->empty()) {
        ++given;
      } else {
        missing += std::string(missing.empty() ? "" : ", ") + flag;
      }
    }
    // Never plaintext by accident: it must be asked for, and it excludes the TLS files.
    if (controlPlane.insecure && given > 0) {
      std::cerr << "kuberelay-relay: --control-plane-insecure excludes the --control-plane-ca, "
                   "-cert and -key files: choose mutual TLS or plaintext\n";
      return 2;
    }
    if (!controlPlane.insecure && !missing.empty()) {
      std::cerr << "kuberelay-relay: --control-plane needs mutual TLS (missing: " << missing
                << ") or, for local use only, --control-plane-insecure\n";
      return 2;
    }
    controlPlane.caFile = caFile;
    controlPlane.certFile = certFile;
    controlPlane.keyFile = keyFile;
    if (std::string error = ControlPlaneClient::checkCredentials(controlPlane); !error.empty()) {
      std::cerr << "kuberelay-relay: " << error << "\n";
      return 2;
    }
    if (controlPlane.podName.empty()) {
      const char* pod = std::getenv("POD_NAME");
      char host[256] = {};
      controlPlane.podName = pod && *pod                                  ? pod
                             : ::gethostname(host, sizeof(host) - 1) == 0 ? host
                                                                          : "relay";
    }
    options.controlPlane = controlPlane;
  } else if (controlPlane.insecure || !caFile.empty() || !certFile.empty() || !keyFile.empty()) {
    std::cerr << "kuberelay-relay: the --control-plane-* options need --control-plane\n";
    return 2;
  }
  options.manifests = manifests;
  options.standbyPorts.assign(standbyPorts.begin(), standbyPorts.end());
  options.protocolLogDir = protocolLogDir;
  options.drainTimeout = std::chrono::seconds(drainSeconds);
  options.nextHopTimeout = std::chrono::seconds(nextHopTimeout);
  options.nextHopPool.idleTimeout =
      std::chrono::milliseconds(static_cast<int64_t>(std::max(0.0, nextHopIdle) * 1000));
  std::signal(SIGPIPE, SIG_IGN);

  asio::io_context io(1);
  Relay relay(io, options);
  try {
    relay.start();
  } catch (const std::exception& e) {
    log("error", "cannot start", {{"error", e.what()}});
    return 1;
  }
  asio::signal_set signals(io, SIGTERM, SIGINT);
  std::function<void(const asio::error_code&, int)> onSignal = [&](const asio::error_code& ec,
                                                                   int sig) {
    if (ec) return;
    if (sig == SIGINT) {
      io.stop();
      return;
    }
    relay.drain();
    signals.async_wait(onSignal);
  };
  signals.async_wait(onSignal);
  io.run();
  log("info", "stopped");
  return 0;
}
