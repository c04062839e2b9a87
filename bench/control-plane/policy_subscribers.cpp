// NAME
//   kuberelay-policy-subscribers - N simulated relays on the policy channel, for benchmarks
// SYNOPSIS
//   kuberelay-policy-subscribers --target 127.0.0.1:9443 [--relays 100] [--pool default]
//                                [--seconds 600]
// DESCRIPTION
//   Opens one PolicyDiscovery stream per simulated relay (plaintext: the operator runs with
//   --policy-insecure in the benchmark), and ACKs every snapshot at once (a real relay compiles
//   it first; compile cost is measured by policy_bench). For every version it prints, when the
//   last relay has received it, one line:
//     version=V relays=N first_ack=EPOCH last_ack=EPOCH bytes=B objects=K
//   with wall-clock times (seconds since the epoch, microseconds) the driver compares with the
//   time it ran kubectl. "ready" is printed once every relay has its first snapshot. Exits
//   after --seconds or on SIGTERM/SIGINT.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "kuberelay/policy/v1/policy.grpc.pb.h"

namespace pb = kuberelay::policy::v1;

namespace {

std::atomic<bool> stopping{false};

double now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

struct VersionSeen {
  int relays = 0;
  double first = 0, last = 0;
  size_t bytes = 0;
  int objects = 0;
};

std::mutex mutex;
std::map<std::string, VersionSeen> seen;
int relaysWithPolicy = 0;

void record(const pb::PolicyResponse& response, int total) {
  std::lock_guard lock(mutex);
  VersionSeen& v = seen[response.version_info()];
  double t = now();
  if (v.relays == 0) v.first = t;
  v.last = t;
  v.bytes = response.ByteSizeLong();
  v.objects = response.snapshot().objects_size();
  if (++v.relays == total) {
    std::printf("version=%s relays=%d first_ack=%.6f last_ack=%.6f bytes=%zu objects=%d\n",
                response.version_info().c_str(), v.relays, v.first, v.last, v.bytes, v.objects);
    std::fflush(stdout);
  }
}

void relay(const std::shared_ptr<grpc::Channel>& channel, int index, int total,
           const std::string& pool) {
  auto stub = pb::PolicyDiscovery::NewStub(channel);
  std::string version;
  bool counted = false;
  while (!stopping) {
    grpc::ClientContext context;
    auto stream = stub->StreamPolicy(&context);
    pb::PolicyRequest hello;
    hello.mutable_relay()->set_pod("sim-" + std::to_string(index));
    hello.mutable_relay()->set_pool(pool);
    hello.set_version_info(version);
    if (!stream->Write(hello)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      continue;
    }
    pb::PolicyResponse response;
    while (!stopping && stream->Read(&response)) {
      pb::PolicyRequest ack;
      ack.mutable_relay()->set_pod("sim-" + std::to_string(index));
      ack.mutable_relay()->set_pool(pool);
      ack.set_version_info(response.version_info());
      ack.set_response_nonce(response.nonce());
      if (!stream->Write(ack)) break;
      version = response.version_info();
      record(response, total);
      if (!counted) {
        counted = true;
        std::lock_guard lock(mutex);
        if (++relaysWithPolicy == total) {
          std::printf("ready relays=%d\n", total);
          std::fflush(stdout);
        }
      }
    }
    context.TryCancel();
    stream->Finish();
    if (!stopping) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string target = "127.0.0.1:9443", pool = "default";
  int relays = 100, seconds = 600;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i], v = argv[i + 1];
    if (a == "--target")
      target = v;
    else if (a == "--relays")
      relays = std::stoi(v);
    else if (a == "--pool")
      pool = v;
    else if (a == "--seconds")
      seconds = std::stoi(v);
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  signal(SIGTERM, [](int) { stopping = true; });
  signal(SIGINT, [](int) { stopping = true; });
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(256 << 20);
  std::vector<std::thread> threads;
  // A few channels (HTTP/2 connections) shared by the streams, as relays on a few nodes would.
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int c = 0; c < 8; ++c) {
    args.SetInt("kuberelay.channel", c);  // distinct args: distinct connections
    channels.push_back(grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args));
  }
  for (int i = 0; i < relays; ++i) {
    threads.emplace_back(relay, channels[static_cast<size_t>(i) % channels.size()], i, relays,
                         pool);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (!stopping && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  stopping = true;
  std::_Exit(0);  // streams blocked in Read end with the process
}
