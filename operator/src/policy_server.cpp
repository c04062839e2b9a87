#include "policy_server.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <stdexcept>
#include <thread>

#include "kube/kubeconfig.h"
#include "kuberelay/policy/v1/policy.grpc.pb.h"
#include "log.h"

namespace kuberelay::op {
namespace {

namespace pb = kuberelay::policy::v1;

std::string readPem(const std::string& file, const char* what) {
  auto text = readFile(file);
  if (!text) throw std::runtime_error(std::string("cannot read the ") + what + " " + file);
  return *text;
}

class Service final : public pb::PolicyDiscovery::Service {
public:
  Service(PolicyDistributor& distributor, SnapshotSizeObserver* sizes,
          std::function<bool()> serving)
      : distributor_(distributor), sizes_(sizes), serving_(std::move(serving)) {}

  void stop() { stopping_ = true; }

  grpc::Status StreamPolicy(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<pb::PolicyResponse, pb::PolicyRequest>* stream) override {
    if (!serves()) return notLeader();
    pb::PolicyRequest first;
    if (!stream->Read(&first)) return grpc::Status::OK;
    const std::string pod = first.relay().pod().empty() ? context->peer() : first.relay().pod();
    const std::string pool = first.relay().pool().empty() ? "default" : first.relay().pool();
    const uint64_t id = distributor_.connect(pod, pool, first.version_info());
    logInfo("relay subscribed", {{"relay", pod},
                                 {"pool", pool},
                                 {"version", first.version_info()},
                                 {"peer", context->peer()}});

    std::mutex mutex;
    std::string outstandingNonce, outstandingVersion;
    std::atomic<bool> closed{false};
    std::thread reader([&] {
      pb::PolicyRequest request;
      while (stream->Read(&request)) {
        std::string nonce, version;
        {
          std::lock_guard lock(mutex);
          nonce = outstandingNonce;
          version = outstandingVersion;
        }
        if (request.response_nonce().empty() || request.response_nonce() != nonce) continue;
        if (request.error_detail().empty()) {
          distributor_.acked(id, request.version_info());
          logInfo("relay applied", {{"relay", pod}, {"pool", pool}, {"version", version}});
        } else {
          distributor_.nacked(id, version, request.error_detail());
          logWarn("relay rejected the policy", {{"relay", pod},
                                                {"pool", pool},
                                                {"version", version},
                                                {"in_force", request.version_info()},
                                                {"error", request.error_detail()}});
        }
      }
      closed = true;
    });

    std::string lastSent = first.version_info();  // what the relay runs: never resend it
    uint64_t epoch = 0;
    bool demoted = false;
    while (!closed && !context->IsCancelled() && !stopping_) {
      if (!serves()) {
        demoted = true;
        break;
      }
      auto snap = distributor_.snapshot(pool);
      if (snap && snap->epoch != epoch) {
        epoch = snap->epoch;
        if (snap->version != lastSent) {
          auto response = responseFor(*snap);
          {
            std::lock_guard lock(mutex);
            outstandingNonce = response->nonce();
            outstandingVersion = snap->version;
          }
          if (!stream->Write(*response)) break;
          lastSent = snap->version;
        }
      }
      distributor_.waitForPublish(epoch, std::chrono::milliseconds(500));
    }
    context->TryCancel();  // unblocks the reader's Read
    reader.join();
    distributor_.disconnect(id);
    logInfo("relay disconnected", {{"relay", pod}, {"pool", pool}});
    return demoted ? notLeader() : grpc::Status::OK;
  }

private:
  // One response per (pool, publish), shared by every stream of the pool.
  std::shared_ptr<const pb::PolicyResponse> responseFor(const PoolSnapshot& snap) {
    std::lock_guard lock(cacheMutex_);
    auto& slot = cache_[snap.pool];
    if (slot && slot->nonce() == nonceOf(snap)) return slot;
    auto response = std::make_shared<pb::PolicyResponse>();
    response->set_version_info(snap.version);
    response->set_nonce(nonceOf(snap));
    pb::Snapshot* s = response->mutable_snapshot();
    s->set_version(snap.version);
    s->set_pool(snap.pool);
    for (const PolicySourceObject* o : snap.objects) {
      pb::PolicyObject* out = s->add_objects();
      out->set_kind(o->kind);
      out->set_namespace_(o->ns);
      out->set_name(o->name);
      out->set_generation(o->generation);
      out->set_manifest(o->manifest);
    }
    if (sizes_) sizes_->snapshotBytes(snap.pool, response->ByteSizeLong());
    slot = std::move(response);
    return slot;
  }
  bool serves() const { return !serving_ || serving_(); }
  static grpc::Status notLeader() {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "not the leader: try another replica");
  }
  static std::string nonceOf(const PoolSnapshot& snap) {
    return std::to_string(snap.epoch) + "/" + snap.version;
  }

  PolicyDistributor& distributor_;
  SnapshotSizeObserver* sizes_;
  std::function<bool()> serving_;
  std::atomic<bool> stopping_{false};
  std::mutex cacheMutex_;
  std::map<std::string, std::shared_ptr<const pb::PolicyResponse>> cache_;
};

}  // namespace

struct PolicyServer::Impl {
  PolicyDistributor& distributor;
  PolicyServerOptions options;
  Service service;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  Impl(PolicyDistributor& d, PolicyServerOptions o, SnapshotSizeObserver* sizes)
      : distributor(d), options(std::move(o)), service(d, sizes, options.serving) {}
};

PolicyServer::PolicyServer(PolicyDistributor& distributor, PolicyServerOptions options,
                           SnapshotSizeObserver* sizes)
    : impl_(std::make_unique<Impl>(distributor, std::move(options), sizes)) {}

PolicyServer::~PolicyServer() { stop(); }

void PolicyServer::start() {
  const auto& o = impl_->options;
  std::shared_ptr<grpc::ServerCredentials> credentials;
  if (o.insecure) {
    credentials = grpc::InsecureServerCredentials();
  } else {
    if (o.certFile.empty() || o.keyFile.empty() || o.clientCaFile.empty()) {
      throw std::runtime_error(
          "the policy channel needs --policy-tls-cert, --policy-tls-key and --policy-client-ca "
          "(or --policy-insecure for local use)");
    }
    grpc::SslServerCredentialsOptions tls(
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    tls.pem_root_certs = readPem(o.clientCaFile, "client CA");
    tls.pem_key_cert_pairs.push_back(
        {readPem(o.keyFile, "TLS key"), readPem(o.certFile, "TLS certificate")});
    credentials = grpc::SslServerCredentials(tls);
  }
  grpc::ServerBuilder builder;
  builder.AddListeningPort(o.listen, credentials, &impl_->port);
  builder.RegisterService(&impl_->service);
  builder.SetMaxReceiveMessageSize(o.maxMessageBytes);
  builder.SetMaxSendMessageSize(o.maxMessageBytes);
  // Notice relays that vanished without closing their stream (node lost, network cut).
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 20000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000);
  impl_->server = builder.BuildAndStart();
  if (!impl_->server || impl_->port == 0) {
    throw std::runtime_error("cannot listen for relays on " + o.listen);
  }
}

int PolicyServer::port() const { return impl_->port; }

void PolicyServer::stop() {
  if (!impl_ || !impl_->server) return;
  impl_->service.stop();
  impl_->distributor.stop();
  impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  impl_->server->Wait();
  impl_->server.reset();
}

}  // namespace kuberelay::op
