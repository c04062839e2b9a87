// NAME
//   control_plane_client.h - cluster mode: the relay's subscription to the operator
// DESCRIPTION
//   One thread runs the xDS-style loop of proto/kuberelay/policy/v1/policy.proto: open
//   PolicyDiscovery.StreamPolicy, subscribe with this relay's identity and the version in
//   force, and for each snapshot the operator sends, stage it (decode, compile, prepare: on
//   this thread, so the sessions on the io thread never wait for a compile), commit it on the
//   io thread, then ACK; or NACK with the reason, the previous version staying in force. When
//   the stream ends it reconnects with jittered exponential backoff and resubscribes with the
//   version in force, which keeps being enforced meanwhile.
//   The generated gRPC code stays in the .cpp: nothing here names a protobuf type.
#pragma once

#include <asio/io_context.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "metrics.h"
#include "policy_store.h"

namespace kuberelay::relay {

struct ControlPlaneOptions {
  std::string target;  // the operator's policy service, HOST:PORT
  std::string podName;
  std::string pool = "default";
  // Mutual TLS: the CA that signed the operator's certificate, and this relay's own pair.
  // Read again on every connection attempt, so rotated files are picked up.
  std::filesystem::path caFile;
  std::filesystem::path certFile;
  std::filesystem::path keyFile;
  bool insecure = false;  // plaintext: only when explicitly asked for (local use)
  std::chrono::milliseconds initialBackoff{250};
  std::chrono::milliseconds maxBackoff{10000};
  // How long a staged snapshot may wait for the io thread before it is NACKed instead.
  std::chrono::milliseconds commitTimeout{10000};
  // HTTP/2 keepalive pings on the stream, so a vanished operator (no FIN) is noticed.
  std::chrono::milliseconds keepaliveInterval{30000};
  std::chrono::milliseconds keepaliveTimeout{10000};
  int64_t maxMessageBytes = 256 * 1024 * 1024;  // a 5,000-connector snapshot is several MB
};

// What the relay does with a snapshot: stage() checks and prepares it (any thread) and either
// refuses it (`error`) or returns the commit that puts it in force, run on the io thread.
struct StagedSnapshot {
  std::string error;
  std::function<void()> commit;
  std::string summary;  // for the "applied" log line ("connectors=3 errors=0 warnings=1")
};
using StageSnapshot = std::function<StagedSnapshot(const ReceivedSnapshot&)>;

class ControlPlaneClient {
public:
  ControlPlaneClient(asio::io_context& io, ControlPlaneOptions options, StageSnapshot stage,
                     Metrics& metrics);
  ~ControlPlaneClient();  // stop()
  ControlPlaneClient(const ControlPlaneClient&) = delete;
  ControlPlaneClient& operator=(const ControlPlaneClient&) = delete;

  // Starts the thread; `versionInForce` is what the first subscription reports ("" if none).
  void start(std::string versionInForce);
  // Cancels the stream and any backoff wait; returns at once. Safe from any thread.
  void requestStop();
  // requestStop(), then waits for the thread. Not from the io thread while a commit is pending
  // (it would wait out commitTimeout).
  void stop();

  // The files named in the options exist and are readable; else the reason (for main()).
  static std::string checkCredentials(const ControlPlaneOptions& options);

  struct Stream;  // the gRPC call in progress (defined in the .cpp)

private:
  struct Attempt {
    bool connected = false;     // the subscription reached the operator
    bool resetBackoff = false;  // a response came, or the stream lived long enough
    std::string error;          // why it ended
  };
  void run();
  // One connection: subscribe, then serve responses until the stream ends.
  Attempt session();
  // Stages and commits one snapshot; returns "" when it is in force, else the NACK reason.
  std::string apply(const ReceivedSnapshot& snapshot, std::string& summary);
  bool sleepFor(std::chrono::milliseconds delay);  // false when stopping

  asio::io_context& io_;
  ControlPlaneOptions options_;
  StageSnapshot stage_;
  Metrics& metrics_;
  std::string versionInForce_;  // owned by the thread once started

  std::mutex mutex_;  // guards stopping_ and stream_ against requestStop()
  std::condition_variable wake_;
  bool stopping_ = false;
  Stream* stream_ = nullptr;
  std::thread thread_;
};

}  // namespace kuberelay::relay
