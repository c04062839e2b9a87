// The only translation unit of the operator that includes cpprestsdk (each costs ~20 s to
// compile; toolchain.md §4c). Built with _TURN_OFF_PLATFORM_STRING: no U() macro, and
// utility::string_t is std::string on Linux.
#include "kube/cpprest_kube_api.h"

#include <cpprest/containerstream.h>
#include <cpprest/http_client.h>
#include <cpprest/uri_builder.h>

#include <mutex>
#include <optional>
#include <stdexcept>
#include <vector>

namespace kuberelay::op {
namespace {

using web::http::http_request;
using web::http::http_response;
using web::http::method;
using web::http::methods;
using web::http::client::http_client;
using web::http::client::http_client_config;

void applyTls(boost::asio::ssl::context& ctx, const std::string& ca, const std::string& cert,
              const std::string& key) {
  if (!ca.empty()) ctx.add_certificate_authority(boost::asio::buffer(ca.data(), ca.size()));
  if (!cert.empty()) {
    ctx.use_certificate_chain(boost::asio::buffer(cert.data(), cert.size()));
    ctx.use_private_key(boost::asio::buffer(key.data(), key.size()),
                        boost::asio::ssl::context::pem);
  }
}

std::string clip(std::string text, size_t max = 2000) {
  if (text.size() > max) {
    text.resize(max);
    text += "...";
  }
  return text;
}

// A response (status + body text) as an ApiResult: the body decoded when it is JSON, reason
// and message taken from a Status object on errors.
ApiResult toResult(int status, const std::string& text) {
  ApiResult r;
  r.status = status;
  if (r.ok() && text.empty()) return r;  // no body (body stays null)
  Json body = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  bool isJson = !body.is_discarded();
  if (r.ok()) {
    if (!isJson) {
      r.status = 0;
      r.reason = "InvalidResponse";
      r.message = "the response is not JSON: " + clip(text, 200);
      return r;
    }
    r.body = std::move(body);
    return r;
  }
  if (isJson && body.is_object() && body.value("kind", "") == "Status") {
    r.reason = body.value("reason", "");
    r.message = body.value("message", "");
  } else {
    r.message = clip(text, 500);
  }
  return r;
}

class CpprestKubeApi final : public KubeApi {
public:
  CpprestKubeApi(ClusterConfig config, CpprestOptions options)
      : config_(std::move(config)), options_(std::move(options)) {
    if (config_.server.rfind("https://", 0) != 0 && config_.server.rfind("http://", 0) != 0) {
      throw std::runtime_error("server " + config_.server + " is not an http(s) URL");
    }
    // Load the TLS material once now, so that a bad PEM is a readable start-up error rather
    // than an exception inside the first handshake.
    try {
      boost::asio::ssl::context probe(boost::asio::ssl::context::tls_client);
      applyTls(probe, config_.caPem, config_.clientCertPem, config_.clientKeyPem);
    } catch (const std::exception& e) {
      throw std::runtime_error("cannot load the TLS credentials of " + config_.source + ": " +
                               e.what());
    }
    client_ = std::make_unique<http_client>(config_.server, clientConfig(options_.requestTimeout));
  }

  ListResult list(const std::string& path, const ListOptions& o) override {
    web::uri_builder b(path);
    if (o.limit > 0) b.append_query("limit", std::to_string(o.limit));
    if (!o.continueToken.empty()) b.append_query("continue", o.continueToken);
    if (!o.resourceVersion.empty()) b.append_query("resourceVersion", o.resourceVersion);
    if (!o.labelSelector.empty()) b.append_query("labelSelector", o.labelSelector);
    if (!o.fieldSelector.empty()) b.append_query("fieldSelector", o.fieldSelector);
    ListResult out;
    out.result = send(methods::GET, b.to_string(), nullptr, "");
    if (!out.result.ok()) return out;
    const Json& body = out.result.body;
    if (!body.is_object()) {
      out.result.status = 0;
      out.result.reason = "InvalidResponse";
      out.result.message = "a list response is not an object";
      return out;
    }
    if (auto it = body.find("items"); it != body.end() && it->is_array()) out.items = *it;
    if (auto md = body.find("metadata"); md != body.end() && md->is_object()) {
      out.resourceVersion = md->value("resourceVersion", "");
      out.continueToken = md->value("continue", "");
    }
    out.result.body = nullptr;  // the items are in out.items; keep one copy
    return out;
  }

  WatchResult watch(const std::string& path, const WatchOptions& o, const WatchCallback& onEvent,
                    Cancellation& cancel) override {
    WatchResult out;
    if (cancel.cancelled()) {
      out.end = WatchEnd::Cancelled;
      return out;
    }
    web::uri_builder b(path);
    b.append_query("watch", "1");
    if (!o.resourceVersion.empty()) b.append_query("resourceVersion", o.resourceVersion);
    if (o.timeoutSeconds > 0) b.append_query("timeoutSeconds", std::to_string(o.timeoutSeconds));
    if (o.allowWatchBookmarks) b.append_query("allowWatchBookmarks", "true");
    if (!o.labelSelector.empty()) b.append_query("labelSelector", o.labelSelector);
    if (!o.fieldSelector.empty()) b.append_query("fieldSelector", o.fieldSelector);

    // Its own client: the inactivity timeout must outlast a quiet watch.
    http_client client(
        config_.server,
        clientConfig(std::chrono::seconds(std::max(o.timeoutSeconds, 1)) + options_.watchSlack));
    pplx::cancellation_token_source cts;
    uint64_t hook = cancel.onCancel([cts]() mutable { cts.cancel(); });
    struct Unhook {
      Cancellation& c;
      uint64_t id;
      pplx::cancellation_token_source cts;
      ~Unhook() {
        c.remove(id);
        cts.cancel();  // whatever happened, the stream is not read any more
      }
    } unhook{cancel, hook, cts};

    try {
      http_request req = makeRequest(methods::GET, b.to_string());
      http_response resp = client.request(req, cts.get_token()).get();
      if (resp.status_code() != 200) {
        out.result = toResult(resp.status_code(), resp.extract_utf8string(true).get());
        out.end = out.result.gone() ? WatchEnd::Gone : WatchEnd::Error;
        return out;
      }
      out.result.status = 200;
      auto body = resp.body();
      for (;;) {
        concurrency::streams::container_buffer<std::vector<uint8_t>> line;
        size_t n = body.read_line(line).get();
        if (n == 0) {
          if (body.is_eof()) break;
          continue;
        }
        const auto& bytes = line.collection();
        Json event = Json::parse(bytes.begin(), bytes.end(), nullptr, false);
        if (event.is_discarded() || !event.is_object()) {
          out.end = WatchEnd::Error;
          out.result.status = 0;
          out.result.reason = "InvalidResponse";
          out.result.message = "a watch event is not JSON";
          return out;
        }
        if (event.value("type", "") == "ERROR") {
          const Json& status = event.contains("object") ? event["object"] : Json::object();
          out.result.status = status.is_object() ? status.value("code", 0) : 0;
          out.result.reason = status.is_object() ? status.value("reason", "") : "";
          out.result.message = status.is_object() ? status.value("message", "") : "";
          out.end = (out.result.status == 410 || out.result.reason == "Expired" ||
                     out.result.reason == "Gone")
                        ? WatchEnd::Gone
                        : WatchEnd::Error;
          return out;
        }
        ++out.events;
        if (!onEvent(event)) {
          out.end = WatchEnd::Cancelled;
          return out;
        }
      }
      out.end = cancel.cancelled() ? WatchEnd::Cancelled : WatchEnd::Closed;
      return out;
    } catch (const std::exception& e) {
      if (cancel.cancelled()) {
        out.end = WatchEnd::Cancelled;
        return out;
      }
      out.end = WatchEnd::Error;
      out.result.status = 0;
      out.result.reason = "TransportError";
      out.result.message = e.what();
      return out;
    }
  }

  ApiResult get(const std::string& path) override { return send(methods::GET, path, nullptr, ""); }

  ApiResult patchStatus(const std::string& objectPath, const Json& status,
                        const std::string& resourceVersion) override {
    Json patch = {{"status", status}};
    if (!resourceVersion.empty()) patch["metadata"] = {{"resourceVersion", resourceVersion}};
    return send(methods::PATCH, objectPath + "/status", &patch, "application/merge-patch+json");
  }

  ApiResult createEvent(const std::string& ns, const Json& event) override {
    return send(methods::POST, "/api/v1/namespaces/" + ns + "/events", &event, "application/json");
  }

  ApiResult create(const std::string& collectionPath, const Json& object) override {
    return send(methods::POST, collectionPath, &object, "application/json");
  }

  ApiResult replace(const std::string& objectPath, const Json& object) override {
    return send(methods::PUT, objectPath, &object, "application/json");
  }

private:
  http_client_config clientConfig(std::chrono::seconds timeout) const {
    http_client_config c;
    c.set_timeout(timeout);
    c.set_validate_certificates(!config_.insecureSkipTlsVerify);
    std::string ca = config_.caPem, cert = config_.clientCertPem, key = config_.clientKeyPem;
    if (!ca.empty() || !cert.empty()) {
      c.set_ssl_context_callback(
          [ca, cert, key](boost::asio::ssl::context& ctx) { applyTls(ctx, ca, cert, key); });
    }
    return c;
  }

  // The bearer token: from the token file when there is one (re-read every time: rotation),
  // keeping the last good one when the file is briefly unreadable.
  std::string bearer() {
    if (config_.tokenFile.empty()) return config_.token;
    auto content = readFile(config_.tokenFile);
    std::lock_guard lock(tokenMutex_);
    if (content) lastToken_ = trimToken(*content);
    return lastToken_.empty() ? config_.token : lastToken_;
  }

  http_request makeRequest(const method& m, const std::string& pathAndQuery) {
    http_request req(m);
    req.set_request_uri(pathAndQuery);
    req.headers().add("Accept", "application/json");
    req.headers().add("User-Agent", options_.userAgent);
    std::string token = bearer();
    if (!token.empty()) req.headers().add("Authorization", "Bearer " + token);
    return req;
  }

  ApiResult send(const method& m, const std::string& pathAndQuery, const Json* body,
                 const std::string& contentType) {
    try {
      http_request req = makeRequest(m, pathAndQuery);
      if (body) req.set_body(body->dump(), contentType);
      http_response resp = client_->request(req).get();
      return toResult(resp.status_code(), resp.extract_utf8string(true).get());
    } catch (const std::exception& e) {
      ApiResult r;
      r.reason = "TransportError";
      r.message = e.what();
      return r;
    }
  }

  ClusterConfig config_;
  CpprestOptions options_;
  std::unique_ptr<http_client> client_;
  std::mutex tokenMutex_;
  std::string lastToken_;
};

}  // namespace

std::unique_ptr<KubeApi> makeCpprestKubeApi(const ClusterConfig& config,
                                            const CpprestOptions& options) {
  return std::make_unique<CpprestKubeApi>(config, options);
}

}  // namespace kuberelay::op
