// NAME
//   policy_server.h - the gRPC PolicyDiscovery service relays subscribe to
// DESCRIPTION
//   One bidirectional stream per relay (proto/kuberelay/policy/v1/policy.proto): the relay
//   says who it is, which pool it serves and which version it runs; the server sends its pool's
//   snapshot whenever the pool's version differs from what it last sent (never the same version
//   twice on a stream, so a NACKed snapshot is not retried until the policy changes), and
//   reports each ACK and NACK to the PolicyDistributor. One response per (pool, publish) is
//   built and written to every stream of that pool. Mutual TLS unless `insecure` (local use).
//   The only operator file that includes generated protobuf/gRPC code.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "distribution.h"

namespace kuberelay::op {

struct PolicyServerOptions {
  std::string listen = "0.0.0.0:9443";
  std::string certFile, keyFile;  // the server's certificate and key (PEM)
  std::string clientCaFile;       // relays must present a certificate this CA signed
  bool insecure = false;          // plaintext, no client certificates (local use only)
  int maxMessageBytes = 256 << 20;
  // Unset, or true: serve. False (a standby replica): refuse streams with UNAVAILABLE, and end
  // open ones, so relays reconnect through the Service until they reach the leader.
  std::function<bool()> serving;
};

class SnapshotSizeObserver {
public:
  virtual ~SnapshotSizeObserver() = default;
  virtual void snapshotBytes(const std::string& pool, size_t bytes) = 0;
};

class PolicyServer {
public:
  PolicyServer(PolicyDistributor& distributor, PolicyServerOptions options,
               SnapshotSizeObserver* sizes = nullptr);
  ~PolicyServer();
  void start();  // throws std::runtime_error (bad TLS files, address in use)
  int port() const;
  void stop();  // ends every stream (relays reconnect elsewhere or later)

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kuberelay::op
