#include "control_plane_client.h"

#include <grpc/support/log.h>
#include <grpcpp/grpcpp.h>

#include <asio/post.hpp>
#include <atomic>
#include <fstream>
#include <future>
#include <random>
#include <sstream>

#include "kuberelay/policy/v1/policy.grpc.pb.h"
#include "log.h"

namespace kuberelay::relay {

namespace pb = ::kuberelay::policy::v1;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

struct ControlPlaneClient::Stream {
  grpc::ClientContext context;
};

namespace {

// gRPC's own messages (a TLS handshake failure, ...) as logfmt lines like every other.
void grpcLog(gpr_log_func_args* args) {
  const char* level = args->severity == GPR_LOG_SEVERITY_ERROR  ? "error"
                      : args->severity == GPR_LOG_SEVERITY_INFO ? "info"
                                                                : "debug";
  log(level, "grpc",
      {{"detail", args->message ? args->message : ""},
       {"file", args->file ? args->file : ""},
       {"line", std::to_string(args->line)}});
}

bool readFile(const std::filesystem::path& path, const char* what, std::string& out,
              std::string& error) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  if (in) text << in.rdbuf();
  if (!in || text.str().empty()) {
    error = std::string("cannot read the ") + what + " file " + path.string() +
            (in ? ": it is empty" : "");
    return false;
  }
  out = text.str();
  return true;
}

std::shared_ptr<grpc::ChannelCredentials> credentials(const ControlPlaneOptions& o,
                                                      std::string& error) {
  if (o.insecure) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions ssl;
  if (!readFile(o.caFile, "CA", ssl.pem_root_certs, error) ||
      !readFile(o.certFile, "client certificate", ssl.pem_cert_chain, error) ||
      !readFile(o.keyFile, "client key", ssl.pem_private_key, error)) {
    return nullptr;
  }
  return grpc::SslCredentials(ssl);
}

grpc::ChannelArguments channelArguments(const ControlPlaneOptions& o) {
  grpc::ChannelArguments args;
  const int maxBytes = static_cast<int>(o.maxMessageBytes);
  args.SetMaxReceiveMessageSize(maxBytes);  // the default (4 MiB) is too small for a snapshot
  args.SetMaxSendMessageSize(maxBytes);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, static_cast<int>(o.keepaliveInterval.count()));
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, static_cast<int>(o.keepaliveTimeout.count()));
  // The stream is mostly idle: keep pinging even when no data flows (the default stops after
  // two pings without data, and a vanished operator would go unnoticed).
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // Our backoff decides when to try again: each attempt gets its own channel, and must not
  // share a subchannel (and its reconnect backoff of up to two minutes) with earlier ones.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return args;
}

const char* codeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    default:
      return "UNKNOWN";
  }
}

std::string describe(const grpc::Status& status) {
  if (status.ok()) return "the operator ended the stream";
  std::string text = codeName(status.error_code());
  if (!status.error_message().empty()) text += ": " + status.error_message();
  return text;
}

std::string orNone(const std::string& version) { return version.empty() ? "none" : version; }

// Takes the strings out of the message (a large snapshot is several MB).
ReceivedSnapshot fromMessage(pb::PolicyResponse& response) {
  ReceivedSnapshot out;
  pb::Snapshot& s = *response.mutable_snapshot();
  out.version = std::move(*s.mutable_version());
  out.pool = std::move(*s.mutable_pool());
  out.objects.reserve(s.objects_size());
  for (pb::PolicyObject& o : *s.mutable_objects()) {
    out.objects.push_back({std::move(*o.mutable_kind()), std::move(*o.mutable_namespace_()),
                           std::move(*o.mutable_name()), o.generation(),
                           std::move(*o.mutable_manifest())});
  }
  return out;
}

}  // namespace

ControlPlaneClient::ControlPlaneClient(asio::io_context& io, ControlPlaneOptions options,
                                       StageSnapshot stage, Metrics& metrics)
    : io_(io), options_(std::move(options)), stage_(std::move(stage)), metrics_(metrics) {
  static std::once_flag logOnce;
  std::call_once(logOnce, [] { gpr_set_log_function(grpcLog); });
}

ControlPlaneClient::~ControlPlaneClient() { stop(); }

std::string ControlPlaneClient::checkCredentials(const ControlPlaneOptions& options) {
  std::string error;
  credentials(options, error);
  return error;
}

void ControlPlaneClient::start(std::string versionInForce) {
  versionInForce_ = std::move(versionInForce);
  thread_ = std::thread([this] { run(); });
}

void ControlPlaneClient::requestStop() {
  std::lock_guard lock(mutex_);
  stopping_ = true;
  if (stream_) stream_->context.TryCancel();
  wake_.notify_all();
}

void ControlPlaneClient::stop() {
  requestStop();
  if (thread_.joinable()) thread_.join();
}

bool ControlPlaneClient::sleepFor(milliseconds delay) {
  std::unique_lock lock(mutex_);
  return !wake_.wait_for(lock, delay, [this] { return stopping_; });
}

void ControlPlaneClient::run() {
  std::mt19937 random(std::random_device{}());
  std::uniform_real_distribution<double> jitter(0.75, 1.25);
  milliseconds backoff = options_.initialBackoff;
  for (;;) {
    Attempt attempt = session();
    {
      std::lock_guard lock(mutex_);
      if (stopping_) break;
    }
    if (attempt.resetBackoff) backoff = options_.initialBackoff;
    const milliseconds delay(
        static_cast<int64_t>(static_cast<double>(backoff.count()) * jitter(random)));
    log("warn", attempt.connected ? "control plane disconnected" : "control plane unreachable",
        {{"target", options_.target},
         {"error", attempt.error},
         {"version", orNone(versionInForce_)},
         {"retry_in", std::to_string(delay.count()) + "ms"}});
    if (!sleepFor(delay)) break;
    backoff = std::min(backoff * 2, options_.maxBackoff);
  }
  metrics_.controlPlaneConnected(false);
}

ControlPlaneClient::Attempt ControlPlaneClient::session() {
  Attempt attempt;
  auto creds = credentials(options_, attempt.error);
  if (!creds) return attempt;
  auto channel = grpc::CreateCustomChannel(options_.target, creds, channelArguments(options_));
  auto stub = pb::PolicyDiscovery::NewStub(channel);
  Stream stream;
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return attempt;
    stream_ = &stream;
  }
  auto request = [this](std::string nonce, std::string error) {
    pb::PolicyRequest r;
    r.mutable_relay()->set_pod(options_.podName);
    r.mutable_relay()->set_pool(options_.pool);
    r.set_version_info(versionInForce_);
    r.set_response_nonce(std::move(nonce));
    r.set_error_detail(std::move(error));
    return r;
  };
  const auto opened = Clock::now();
  auto call = stub->StreamPolicy(&stream.context);
  // The subscription reaches the transport only over an established connection (the call is
  // not wait-for-ready: an unreachable operator fails it instead of queueing it).
  attempt.connected = call->Write(request("", ""));
  bool responded = false;
  if (attempt.connected) {
    metrics_.controlPlaneConnected(true);
    log("info", "control plane connected",
        {{"target", options_.target},
         {"pod", options_.podName},
         {"pool", options_.pool},
         {"version", orNone(versionInForce_)}});
    pb::PolicyResponse response;
    while (call->Read(&response)) {
      responded = true;
      const std::string nonce = response.nonce();
      const std::string offered = response.version_info();
      const bool hasSnapshot = response.has_snapshot();
      ReceivedSnapshot snapshot = fromMessage(response);
      std::string summary, error;
      if (!hasSnapshot) {
        error = "the response carries no snapshot";
      } else if (offered != snapshot.version) {
        error =
            "version_info " + offered + " differs from the snapshot's version " + snapshot.version;
      } else {
        error = apply(snapshot, summary);
      }
      {
        std::lock_guard lock(mutex_);
        if (stopping_) break;  // a commit withdrawn because we stop is no rejection
      }
      if (error.empty()) {
        metrics_.policyUpdate(true);
        log("info", "policy snapshot applied",
            {{"version", snapshot.version}, {"nonce", nonce}, {"summary", summary}});
      } else {
        metrics_.policyUpdate(false);
        log("error", "policy snapshot rejected; the previous policy stays in force",
            {{"version", offered},
             {"in_force", orNone(versionInForce_)},
             {"nonce", nonce},
             {"error", error}});
      }
      if (!call->Write(request(nonce, error))) break;
    }
  }
  // Finish() wants every message read: after a failed write the call is dead, and this ends.
  pb::PolicyResponse unread;
  while (call->Read(&unread)) {
  }
  grpc::Status status = call->Finish();
  {
    std::lock_guard lock(mutex_);
    stream_ = nullptr;
  }
  metrics_.controlPlaneConnected(false);
  attempt.error = describe(status);
  attempt.resetBackoff =
      responded || (attempt.connected && Clock::now() - opened >= options_.maxBackoff);
  return attempt;
}

std::string ControlPlaneClient::apply(const ReceivedSnapshot& snapshot, std::string& summary) {
  StagedSnapshot staged;
  try {
    staged = stage_(snapshot);
  } catch (const std::exception& e) {
    return std::string("cannot stage the snapshot: ") + e.what();
  }
  if (!staged.error.empty()) return staged.error;
  summary = staged.summary;
  // The commit runs on the io thread, which owns the listeners. If it does not get there in
  // time, the commit is withdrawn (whoever claims it first wins), so the version we report in
  // force is certain either way.
  struct Handoff {
    std::atomic<bool> claimed{false};
    std::promise<void> done;
  };
  auto handoff = std::make_shared<Handoff>();
  std::future<void> done = handoff->done.get_future();
  asio::post(io_, [handoff, commit = std::move(staged.commit)] {
    if (handoff->claimed.exchange(true)) return;  // withdrawn
    try {
      commit();
      handoff->done.set_value();
    } catch (...) {
      handoff->done.set_exception(std::current_exception());
    }
  });
  const auto deadline = Clock::now() + options_.commitTimeout;
  while (done.wait_for(milliseconds(100)) != std::future_status::ready) {
    bool stopping;
    {
      std::lock_guard lock(mutex_);
      stopping = stopping_;
    }
    if (!stopping && Clock::now() < deadline) continue;
    if (!handoff->claimed.exchange(true)) {
      return "the relay did not get to apply it within " +
             std::to_string(options_.commitTimeout.count()) + "ms";
    }
    done.wait();  // the io thread is committing it right now (quick)
  }
  try {
    done.get();
  } catch (const std::exception& e) {
    return std::string("cannot apply the snapshot: ") + e.what();
  }
  versionInForce_ = snapshot.version;
  return "";
}

}  // namespace kuberelay::relay
