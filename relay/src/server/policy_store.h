// NAME
//   policy_store.h - the policy a relay enforces, with what it needs ready to serve (TLS)
// DESCRIPTION
//   prepare() turns a compiled Snapshot into a LoadedPolicy: every connector's TLS context is
//   built up front, so a snapshot whose key or certificate OpenSSL refuses is rejected as a
//   whole (the last good policy stays in force) instead of failing in the middle of a client's
//   STARTTLS. Connections keep the LoadedPolicy they started with; new ones get the newest.
//   Policies come from a directory of manifests (local mode, ManifestDirectory) or from the
//   operator (cluster mode, ReceivedSnapshot: see control_plane_client.h).
#pragma once

#include <asio/ssl/context.hpp>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "kuberelay/policy/compiler.h"
#include "kuberelay/policy/snapshot.h"

namespace kuberelay::relay {

struct LoadedPolicy {
  policy::SnapshotPtr snapshot;
  std::vector<std::shared_ptr<asio::ssl::context>> tls;  // by connector index; null: no TLS
  // Client contexts for STARTTLS to each connector's smarthosts (trust: the system store plus
  // forwarding.caSecretName), by connector index; null when forwarding.tls is None.
  std::vector<std::shared_ptr<asio::ssl::context>> forwardTls;
  // proxyProtocol.trustedRanges of every connector bound to a port, merged per port: one
  // lookup per connection instead of a walk over all connectors.
  std::unordered_map<uint16_t, policy::RangeIndex> proxyTrustedByPort;

  bool trustsProxy(uint16_t port, const policy::IpAddress& peer) const {
    auto it = proxyTrustedByPort.find(port);
    return it != proxyTrustedByPort.end() && it->second.lookup(peer).has_value();
  }
};
using LoadedPolicyPtr = std::shared_ptr<const LoadedPolicy>;

struct PrepareResult {
  LoadedPolicyPtr policy;  // null when rejected
  std::string error;
};
PrepareResult prepare(policy::SnapshotPtr snapshot);

class PolicyStore {
public:
  LoadedPolicyPtr current() const {
    std::lock_guard lock(mutex_);
    return current_;
  }
  void set(LoadedPolicyPtr policy) {
    std::lock_guard lock(mutex_);
    current_ = std::move(policy);
  }

private:
  mutable std::mutex mutex_;
  LoadedPolicyPtr current_;
};

// Cluster mode: a snapshot as the operator sent it (the protobuf message, without protobuf).
struct ReceivedObject {
  std::string kind;
  std::string ns;
  std::string name;
  int64_t generation = 0;
  std::string manifest;  // JSON
};
struct ReceivedSnapshot {
  std::string version;
  std::string pool;
  std::vector<ReceivedObject> objects;
};

// Decodes and compiles a received snapshot for `pool` exactly as the operator does (so both
// arrive at the same version), then prepares it. Rejected, with the reason in `error`, when
// the snapshot is for another pool, a manifest cannot be read, the compiled version is not the
// one the operator sent, or prepare() refuses it. Pure: callable from any thread.
struct ReceivedLoad {
  LoadedPolicyPtr policy;  // null when rejected
  std::string error;
  size_t errors = 0;  // compile diagnostics, for the log
  size_t warnings = 0;
};
ReceivedLoad prepareReceived(const ReceivedSnapshot& received, const std::string& pool);

// Local mode: the manifests of one directory, reloaded when a file changes.
class ManifestDirectory {
public:
  ManifestDirectory(std::filesystem::path dir, std::string relayPool)
      : dir_(std::move(dir)), pool_(std::move(relayPool)) {}
  // Compiles the directory when it changed since the last call (always on the first call).
  // Returns the compile result, or nothing when unchanged. `error` is set when the directory
  // could not be read as a whole (a file with a YAML syntax error, ...): keep the last policy.
  struct Load {
    policy::CompileResult result;
    std::string error;
  };
  std::optional<Load> reloadIfChanged();
  const std::filesystem::path& path() const { return dir_; }

private:
  std::string fingerprint() const;
  std::filesystem::path dir_;
  std::string pool_;
  std::string lastFingerprint_;
};

}  // namespace kuberelay::relay
