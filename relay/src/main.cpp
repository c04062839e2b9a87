// NAME
//   kuberelay-relay - the KubeRelay SMTP relay
// SYNOPSIS
//   kuberelay-relay --manifests DIR [--admin 127.0.0.1:9090] [--hostname NAME]
//                   [--relay-pool default] [--drain-timeout 30] [--next-hop-timeout 60]
//                   [--next-hop-idle-timeout 10] [--next-hop-max-idle 32]
// DESCRIPTION
//   Local mode: enforces the ReceiveConnectors, SenderPermissions and AcceptedDomains (and the
//   Secrets they reference) found in DIR, reloading when a file changes. A broken edit keeps
//   the last good policy in force. SIGTERM drains (stop accepting, let sessions finish);
//   a second SIGTERM or SIGINT stops at once.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <csignal>
#include <iostream>

#include "server/log.h"
#include "server/server.h"

int main(int argc, char** argv) {
  using namespace kuberelay::relay;
  CLI::App app{"KubeRelay SMTP relay"};
  RelayOptions options;
  std::string manifests;
  int drainSeconds = 30;
  int nextHopTimeout = 60;
  app.add_option("--manifests", manifests, "local mode: directory of policy manifests")->required();
  app.add_option("--admin", options.adminAddress, "address:port of /metrics, /healthz, /readyz");
  app.add_option("--hostname", options.hostName, "name in the banner, EHLO and Received headers");
  app.add_option("--relay-pool", options.relayPool, "serve only this pool's connectors");
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
  options.manifests = manifests;
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
