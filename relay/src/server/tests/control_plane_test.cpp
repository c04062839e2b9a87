// Cluster mode without an operator: the relay (in process, its io_context on a thread of its
// own) subscribes to a fake PolicyDiscovery server that serves snapshots built from examples/
// the way the operator builds them (each object a JSON manifest), and answers ACK or NACK.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "kuberelay/policy/compiler.h"
#include "kuberelay/policy/manifest.h"
#include "kuberelay/policy/v1/policy.grpc.pb.h"
#include "kuberelay/policy/yaml_tree.h"
#include "server.h"

namespace kuberelay::relay {
namespace {

namespace pb = ::kuberelay::policy::v1;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

const std::filesystem::path kExamples = std::filesystem::path(KUBERELAY_SOURCE_DIR) / "examples";
const std::string kSeed003 = "003-anonymous-relay-ip-restricted";
const std::string kGarbageKey = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";

template <class T>
class Mailbox {
public:
  void push(T value) {
    std::lock_guard lock(mutex_);
    items_.push_back(std::move(value));
    ready_.notify_all();
  }
  std::optional<T> pop(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    if (!ready_.wait_for(lock, timeout, [this] { return !items_.empty(); })) return std::nullopt;
    T value = std::move(items_.front());
    items_.pop_front();
    return value;
  }

private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<T> items_;
};

// The operator's side of the stream, driven by the test: every request the relay sends lands
// in `requests`; what the test puts in `responses` is sent; an empty optional ends the stream.
class FakeOperator final : public pb::PolicyDiscovery::Service {
public:
  Mailbox<pb::PolicyRequest> requests;
  Mailbox<std::optional<pb::PolicyResponse>> responses;
  std::atomic<int> streams{0};

  grpc::Status StreamPolicy(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<pb::PolicyResponse, pb::PolicyRequest>* stream) override {
    ++streams;
    std::atomic<bool> clientGone{false};
    std::thread reader([&] {
      pb::PolicyRequest request;
      while (stream->Read(&request)) requests.push(request);
      clientGone = true;
    });
    while (!clientGone && !context->IsCancelled()) {
      auto next = responses.pop(20ms);
      if (!next) continue;
      if (!*next) break;  // the test ends this stream
      stream->Write(**next);
    }
    context->TryCancel();  // unblocks the reader
    reader.join();
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the fake operator ended the stream");
  }
};

std::string jsonString(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

// Scalars become JSON strings: the manifest reader reads "true" and true alike, as the
// operator's manifests (from the API server, typed) and local YAML must agree.
std::string toJson(const policy::yaml::Node& node, const std::string& injectNamespace = "") {
  using Kind = policy::yaml::Node::Kind;
  switch (node.kind()) {
    case Kind::Map: {
      std::string out = "{";
      bool hasNamespace = false;
      for (const auto& [key, value] : node.entries()) {
        if (out.size() > 1) out += ",";
        hasNamespace = hasNamespace || key == "namespace";
        out += jsonString(key) + ":" +
               toJson(value, key == "metadata" && !injectNamespace.empty() ? injectNamespace : "");
      }
      // Only the metadata map is given a namespace (the API server always sets one).
      if (!injectNamespace.empty() && node["name"] && !hasNamespace) {
        out +=
            std::string(out.size() > 1 ? "," : "") + "\"namespace\":" + jsonString(injectNamespace);
      }
      return out + "}";
    }
    case Kind::Sequence: {
      std::string out = "[";
      for (size_t i = 0; i < node.size(); ++i) out += (i ? "," : "") + toJson(node[i]);
      return out + "]";
    }
    case Kind::Scalar:
      return jsonString(node.Scalar());
    default:
      return "null";
  }
}

std::string base64(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(n);
  return out;
}

std::string readText(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void replaceAll(std::string& text, std::string_view from, std::string_view to) {
  for (size_t pos = 0; (pos = text.find(from, pos)) != std::string::npos; pos += to.size()) {
    text.replace(pos, from.size(), to);
  }
}

// The policy objects of an examples/ folder as the operator sends them: one JSON manifest each,
// in namespace "default", listening on `port` of 127.0.0.1 instead of 0.0.0.0:2525 (0: as is).
std::vector<pb::PolicyObject> exampleObjects(const std::string& folder, uint16_t port) {
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(kExamples / folder)) {
    if (e.path().extension() == ".yaml") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  std::vector<pb::PolicyObject> objects;
  for (const auto& file : files) {
    std::string text = readText(file);
    if (port) replaceAll(text, "0.0.0.0:2525", "127.0.0.1:" + std::to_string(port));
    auto parsed = policy::yaml::parseAll(text);
    EXPECT_EQ(parsed.error, "") << file;
    for (const auto& doc : parsed.documents) {
      if (!doc.IsMap()) continue;
      pb::PolicyObject o;
      o.set_kind(doc["kind"].Scalar());
      o.set_namespace_("default");
      o.set_name(doc["metadata"]["name"].Scalar());
      o.set_generation(o.kind() == "Secret" ? 0 : 1);
      o.set_manifest(toJson(doc, "default"));
      objects.push_back(std::move(o));
    }
  }
  return objects;
}

// What the operator does: decode each manifest, compile for the pool, take the version.
std::string compiledVersion(const std::vector<pb::PolicyObject>& objects, const std::string& pool) {
  policy::ResourceSet set;
  for (const auto& o : objects) {
    policy::ManifestOptions options;
    options.defaultNamespace = o.namespace_();
    policy::decodeManifests(o.manifest(), "kube-apiserver", set, options);
  }
  return policy::compile(set, {pool, true}).snapshot->version();
}

pb::PolicyResponse response(const std::vector<pb::PolicyObject>& objects, std::string nonce,
                            std::string version = "", std::string pool = "default") {
  if (version.empty()) version = compiledVersion(objects, pool);
  pb::PolicyResponse r;
  r.set_version_info(version);
  r.set_nonce(std::move(nonce));
  r.mutable_snapshot()->set_version(version);
  r.mutable_snapshot()->set_pool(pool);
  for (const auto& o : objects) *r.mutable_snapshot()->add_objects() = o;
  return r;
}

// The same objects with the TLS Secret's key replaced by PEM-shaped garbage: the compiler
// accepts it, OpenSSL does not.
std::vector<pb::PolicyObject> withGarbageKey(std::vector<pb::PolicyObject> objects) {
  for (auto& o : objects) {
    if (o.kind() != "Secret") continue;
    std::string manifest = o.manifest();
    size_t key = manifest.find("\"tls.key\":\"");
    EXPECT_NE(key, std::string::npos);
    size_t start = key + 11, end = manifest.find('"', start);
    manifest.replace(start, end - start, base64(kGarbageKey));
    o.set_manifest(manifest);
  }
  return objects;
}

uint16_t freePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// The first line a client gets on 127.0.0.1:port ("" when nobody answers within 5 s).
std::string greeting(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  timeval timeout{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  std::string line;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
    char c;
    while (line.size() < 512 && ::recv(fd, &c, 1, 0) == 1 && c != '\n') line += c;
  }
  ::close(fd);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

template <class Predicate>
bool eventually(Predicate predicate, std::chrono::milliseconds timeout = 5s) {
  for (auto deadline = Clock::now() + timeout; Clock::now() < deadline;) {
    if (predicate()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return predicate();
}

class ControlPlaneTest : public ::testing::Test {
protected:
  void SetUp() override { smtpPort_ = freePort(); }

  void TearDown() override {
    if (relay_) {
      io_.stop();
      io_thread_.join();
      relay_.reset();  // stops the control-plane client (cancel + join)
    }
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + 2s);
  }

  void startOperator(
      std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials(),
      std::chrono::milliseconds minPingInterval = 0ms) {
    grpc::ServerBuilder builder;
    if (minPingInterval > 0ms) {
      builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                                 static_cast<int>(minPingInterval.count()));
    }
    builder.AddListeningPort("127.0.0.1:0", credentials, &operatorPort_);
    builder.RegisterService(&operator_);
    server_ = builder.BuildAndStart();
    ASSERT_TRUE(server_);
    ASSERT_GT(operatorPort_, 0);
  }

  void startRelay(ControlPlaneOptions controlPlane = {},
                  const std::function<void(RelayOptions&)>& adjust = nullptr) {
    controlPlane.target = "127.0.0.1:" + std::to_string(operatorPort_);
    controlPlane.podName = "relay-0";
    if (controlPlane.caFile.empty()) controlPlane.insecure = true;
    controlPlane.initialBackoff = 50ms;
    controlPlane.maxBackoff = 200ms;
    RelayOptions options;
    options.adminAddress = "127.0.0.1:0";
    options.hostName = "relay.test";
    options.controlPlane = controlPlane;
    if (adjust) adjust(options);
    relay_ = std::make_unique<Relay>(io_, options);
    relay_->start();
    io_thread_ = std::thread([this] { io_.run(); });
  }

  pb::PolicyRequest nextRequest() {
    auto r = operator_.requests.pop(5s);
    EXPECT_TRUE(r) << "the relay sent nothing within 5 s";
    return r.value_or(pb::PolicyRequest{});
  }

  std::string versionInForce() {
    auto p = relay_->store().current();
    return p ? p->snapshot->version() : "";
  }

  bool metric(const std::string& line) {
    std::string text = relay_->metrics().render();
    return text.find("\n" + line + "\n") != std::string::npos;
  }

  // Subscribes and gets the seed-003 policy in force; returns its version.
  std::string subscribeAndApplySeed003() {
    EXPECT_EQ(nextRequest().version_info(), "");
    auto first = response(exampleObjects(kSeed003, smtpPort_), "n1");
    operator_.responses.push(first);
    pb::PolicyRequest ack = nextRequest();
    EXPECT_EQ(ack.response_nonce(), "n1");
    EXPECT_EQ(ack.error_detail(), "");
    EXPECT_EQ(ack.version_info(), first.version_info());
    return first.version_info();
  }

  FakeOperator operator_;
  std::unique_ptr<grpc::Server> server_;
  int operatorPort_ = 0;
  uint16_t smtpPort_ = 0;
  asio::io_context io_;
  std::unique_ptr<Relay> relay_;
  std::thread io_thread_;
};

TEST_F(ControlPlaneTest, JsonManifestsCompileToTheVersionOfTheSameYamlDirectory) {
  // The operator's JSON and a relay's local YAML are two spellings of the same objects.
  auto local = policy::compile(policy::loadManifestDirectory(kExamples / kSeed003), {"default"});
  EXPECT_EQ(compiledVersion(exampleObjects(kSeed003, 0), "default"), local.snapshot->version());
}

TEST_F(ControlPlaneTest, NoPolicyAndNotReadyUntilTheFirstSnapshotThenAckAndEnforce) {
  startOperator();
  startRelay();
  pb::PolicyRequest subscribe = nextRequest();
  EXPECT_EQ(subscribe.relay().pod(), "relay-0");
  EXPECT_EQ(subscribe.relay().pool(), "default");
  EXPECT_EQ(subscribe.version_info(), "");
  EXPECT_EQ(subscribe.response_nonce(), "");
  EXPECT_EQ(subscribe.error_detail(), "");
  EXPECT_TRUE(eventually([&] { return metric("kuberelay_control_plane_connected 1"); }));
  EXPECT_FALSE(relay_->ready());
  EXPECT_EQ(versionInForce(), "");
  EXPECT_EQ(greeting(smtpPort_), "");  // nothing listens before a policy says where

  auto first = response(exampleObjects(kSeed003, smtpPort_), "nonce-1");
  operator_.responses.push(first);
  pb::PolicyRequest ack = nextRequest();
  EXPECT_EQ(ack.relay().pod(), "relay-0");
  EXPECT_EQ(ack.version_info(), first.version_info());
  EXPECT_EQ(ack.response_nonce(), "nonce-1");
  EXPECT_EQ(ack.error_detail(), "");
  // Applied before the ACK left.
  EXPECT_EQ(versionInForce(), first.version_info());
  EXPECT_TRUE(relay_->ready());
  EXPECT_EQ(greeting(smtpPort_).substr(0, 4), "220 ");
  EXPECT_TRUE(metric("kuberelay_policy_updates_total{result=\"applied\"} 1"));
  EXPECT_TRUE(metric("kuberelay_policy_updates_total{result=\"rejected\"} 0"));
  EXPECT_TRUE(metric("kuberelay_policy_version_info{version=\"" + first.version_info() + "\"} 1"));
}

TEST_F(ControlPlaneTest, StandbyPortsAnswer421UntilTheFirstSnapshotsBindingsReplaceThem) {
  startOperator();
  startRelay({}, [&](RelayOptions& o) { o.standbyPorts = {smtpPort_}; });
  nextRequest();
  EXPECT_EQ(greeting(smtpPort_), "421 4.3.2 System not accepting network messages");
  EXPECT_FALSE(relay_->ready());
  auto first = response(exampleObjects(kSeed003, smtpPort_), "n1");
  operator_.responses.push(first);
  EXPECT_EQ(nextRequest().error_detail(), "");
  EXPECT_EQ(greeting(smtpPort_).substr(0, 4), "220 ");
  EXPECT_TRUE(relay_->ready());
}

TEST_F(ControlPlaneTest, APortOffsetMovesTheSocketsNotThePolicy) {
  // Several relays on one host: the policy's port 2525 is served on 2525 + offset.
  const uint16_t policyPort = smtpPort_ > 20000 ? smtpPort_ - 10000 : smtpPort_ + 10000;
  const uint16_t offset = static_cast<uint16_t>(smtpPort_ - policyPort);
  startOperator();
  startRelay({}, [&](RelayOptions& o) { o.portOffset = offset; });
  nextRequest();
  auto first = response(exampleObjects(kSeed003, policyPort), "n1");
  operator_.responses.push(first);
  EXPECT_EQ(nextRequest().error_detail(), "");
  // Connector selection saw the policy's port: a connector of that port answered.
  EXPECT_EQ(greeting(smtpPort_).substr(0, 4), "220 ");
  EXPECT_TRUE(relay_->ready());
}

TEST_F(ControlPlaneTest, NacksAWrongVersionAndKeepsThePrevious) {
  startOperator();
  startRelay();
  const std::string v1 = subscribeAndApplySeed003();

  const std::string wrong = "sha256:0000000000000000";
  operator_.responses.push(response(exampleObjects(kSeed003, smtpPort_), "nonce-2", wrong));
  pb::PolicyRequest nack = nextRequest();
  EXPECT_EQ(nack.version_info(), v1);
  EXPECT_EQ(nack.response_nonce(), "nonce-2");
  EXPECT_EQ(nack.error_detail(), "the snapshot compiled to " + v1 + ", the operator sent " + wrong);
  EXPECT_EQ(versionInForce(), v1);
  EXPECT_TRUE(relay_->ready());
  EXPECT_EQ(greeting(smtpPort_).substr(0, 4), "220 ");
  EXPECT_TRUE(metric("kuberelay_policy_updates_total{result=\"rejected\"} 1"));
  EXPECT_TRUE(metric("kuberelay_policy_version_info{version=\"" + v1 + "\"} 1"));
}

TEST_F(ControlPlaneTest, NacksAnUnusableTlsKeyKeepsThePreviousThenAcksTheNext) {
  startOperator();
  startRelay();
  const std::string v1 = subscribeAndApplySeed003();

  auto broken = response(withGarbageKey(exampleObjects(kSeed003, smtpPort_)), "nonce-2");
  ASSERT_NE(broken.version_info(), v1);
  operator_.responses.push(broken);
  pb::PolicyRequest nack = nextRequest();
  EXPECT_EQ(nack.version_info(), v1);
  EXPECT_EQ(nack.response_nonce(), "nonce-2");
  EXPECT_NE(nack.error_detail().find("TLS Secret relay-tls is unusable"), std::string::npos)
      << nack.error_detail();
  EXPECT_EQ(versionInForce(), v1);
  EXPECT_EQ(greeting(smtpPort_).substr(0, 4), "220 ");

  // The next good snapshot is applied as usual (here: the quickstart policy).
  auto next = response(exampleObjects("quickstart", smtpPort_), "nonce-3");
  operator_.responses.push(next);
  pb::PolicyRequest ack = nextRequest();
  EXPECT_EQ(ack.version_info(), next.version_info());
  EXPECT_EQ(ack.response_nonce(), "nonce-3");
  EXPECT_EQ(ack.error_detail(), "");
  EXPECT_EQ(versionInForce(), next.version_info());
}

TEST_F(ControlPlaneTest, RefusesASnapshotForAnotherPool) {
  startOperator();
  startRelay();
  const std::string v1 = subscribeAndApplySeed003();
  operator_.responses.push(response(exampleObjects(kSeed003, smtpPort_), "nonce-2", "", "other"));
  pb::PolicyRequest nack = nextRequest();
  EXPECT_EQ(nack.version_info(), v1);
  EXPECT_EQ(nack.response_nonce(), "nonce-2");
  EXPECT_EQ(nack.error_detail(),
            "the snapshot is for relay pool \"other\", this relay serves \"default\"");
  EXPECT_EQ(versionInForce(), v1);
}

TEST_F(ControlPlaneTest, KeepsEnforcingWhenTheStreamEndsAndResubscribesWithTheVersionInForce) {
  startOperator();
  startRelay();
  const std::string v1 = subscribeAndApplySeed003();

  operator_.responses.push(std::nullopt);  // the operator goes away
  pb::PolicyRequest again = nextRequest();
  EXPECT_EQ(operator_.streams.load(), 2);
  EXPECT_EQ(again.version_info(), v1);
  EXPECT_EQ(again.response_nonce(), "");
  EXPECT_EQ(again.error_detail(), "");
  EXPECT_EQ(versionInForce(), v1);
  EXPECT_TRUE(relay_->ready());
  EXPECT_EQ(greeting(smtpPort_).substr(0, 4), "220 ");
  EXPECT_TRUE(eventually([&] { return metric("kuberelay_control_plane_connected 1"); }));
}

TEST_F(ControlPlaneTest, KeepsEnforcingWhileTheOperatorIsDown) {
  startOperator();
  startRelay();
  const std::string v1 = subscribeAndApplySeed003();
  server_->Shutdown(std::chrono::system_clock::now());  // cancels the stream at once
  server_.reset();
  EXPECT_TRUE(eventually([&] { return metric("kuberelay_control_plane_connected 0"); }));
  std::this_thread::sleep_for(300ms);  // a few failed reconnects
  EXPECT_EQ(versionInForce(), v1);
  EXPECT_TRUE(relay_->ready());
  EXPECT_EQ(greeting(smtpPort_).substr(0, 4), "220 ");
}

// The relay pings an idle stream (a vanished operator must be noticed). gRPC servers answer
// pings more often than every 5 minutes without data with GOAWAY "too_many_pings" after two
// strikes, so the operator must allow them (GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS
// at most the relay's keepalive interval); without that argument this test fails after ~4 s.
TEST_F(ControlPlaneTest, AnIdleStreamSurvivesKeepalivePingsTheOperatorAllows) {
  startOperator(grpc::InsecureServerCredentials(), 100ms);
  ControlPlaneOptions controlPlane;
  controlPlane.keepaliveInterval = 200ms;  // gRPC sends at most one ping a second
  startRelay(controlPlane);
  subscribeAndApplySeed003();
  std::this_thread::sleep_for(5s);
  EXPECT_EQ(operator_.streams.load(), 1);
  EXPECT_TRUE(metric("kuberelay_control_plane_connected 1"));
}

TEST_F(ControlPlaneTest, SubscribesOverMutualTls) {
  // The example's self-signed certificate (SAN IP:127.0.0.1) plays the CA, the operator's
  // certificate and the relay's client certificate at once.
  auto set = policy::loadManifestDirectory(kExamples / kSeed003);
  ASSERT_EQ(set.secrets.size(), 1u);
  const std::string cert = set.secrets[0].data.at("tls.crt");
  const std::string key = set.secrets[0].data.at("tls.key");
  grpc::SslServerCredentialsOptions ssl(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  ssl.pem_root_certs = cert;
  ssl.pem_key_cert_pairs.push_back({key, cert});
  startOperator(grpc::SslServerCredentials(ssl));

  auto dir =
      std::filesystem::temp_directory_path() / ("kuberelay-cp-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "ca.crt") << cert;
  std::ofstream(dir / "tls.crt") << cert;
  std::ofstream(dir / "tls.key") << key;
  ControlPlaneOptions controlPlane;
  controlPlane.caFile = dir / "ca.crt";
  controlPlane.certFile = dir / "tls.crt";
  controlPlane.keyFile = dir / "tls.key";
  EXPECT_EQ(ControlPlaneClient::checkCredentials(controlPlane), "");
  startRelay(controlPlane);
  subscribeAndApplySeed003();
  EXPECT_TRUE(relay_->ready());
  std::filesystem::remove_all(dir);
}

TEST(ControlPlaneCredentials, NamesTheFileItCannotRead) {
  ControlPlaneOptions o;
  o.caFile = "/nonexistent/ca.crt";
  o.certFile = "/nonexistent/tls.crt";
  o.keyFile = "/nonexistent/tls.key";
  EXPECT_EQ(ControlPlaneClient::checkCredentials(o), "cannot read the CA file /nonexistent/ca.crt");
  o.insecure = true;
  EXPECT_EQ(ControlPlaneClient::checkCredentials(o), "");
}

}  // namespace
}  // namespace kuberelay::relay
