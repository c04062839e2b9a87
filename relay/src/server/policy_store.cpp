#include "policy_store.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include <algorithm>

#include "kuberelay/policy/manifest.h"

namespace kuberelay::relay {

namespace {

// One client context per connector, built with the policy: creating it per session would load
// the system trust store for every message.
std::shared_ptr<asio::ssl::context> clientContext(const policy::CompiledConnector& c,
                                                  std::string& error) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  ctx->set_options(asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3 |
                   asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1 |
                   asio::ssl::context::no_compression);
  if (c.spec.forwarding.tls != policy::ForwardTls::Required) {
    ctx->set_verify_mode(asio::ssl::verify_none);  // opportunistic: encrypt, trust nothing
    return ctx;
  }
  asio::error_code ec;
  ctx->set_default_verify_paths(ec);
  if (!c.forwardCaPem.empty()) {
    // Every certificate of the bundle (asio's add_certificate_authority takes one).
    X509_STORE* store = SSL_CTX_get_cert_store(ctx->native_handle());
    BIO* bio = BIO_new_mem_buf(c.forwardCaPem.data(), static_cast<int>(c.forwardCaPem.size()));
    int added = 0;
    while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
      if (X509_STORE_add_cert(store, cert) == 1) ++added;
      X509_free(cert);
    }
    BIO_free(bio);
    ERR_clear_error();  // the loop ends on a "no start line" error
    if (added == 0) {
      error = "ca.crt holds no certificate OpenSSL can read";
      return nullptr;
    }
  }
  ctx->set_verify_mode(asio::ssl::verify_peer);
  return ctx;
}

}  // namespace

PrepareResult prepare(policy::SnapshotPtr snapshot) {
  auto loaded = std::make_shared<LoadedPolicy>();
  loaded->tls.resize(snapshot->connectors().size());
  for (const auto& c : snapshot->connectors()) {
    if (c.tlsCertificatePem.empty() || c.quarantined) continue;
    try {
      auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
      // TLS 1.2 and 1.3 only; no renegotiation, no compression.
      ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                       asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                       asio::ssl::context::no_tlsv1_1 | asio::ssl::context::no_compression |
                       asio::ssl::context::single_dh_use);
      SSL_CTX_set_options(ctx->native_handle(), SSL_OP_NO_RENEGOTIATION);
      ctx->use_certificate_chain(asio::buffer(c.tlsCertificatePem));
      ctx->use_private_key(asio::buffer(c.tlsPrivateKeyPem), asio::ssl::context::pem);
      if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
        return {nullptr, "ReceiveConnector " + c.id + ": tls.key does not match tls.crt"};
      }
      loaded->tls[c.index] = std::move(ctx);
    } catch (const std::exception& e) {
      return {nullptr, "ReceiveConnector " + c.id + ": TLS Secret " + c.spec.tlsSecretName +
                           " is unusable: " + e.what()};
    }
  }
  loaded->forwardTls.resize(snapshot->connectors().size());
  for (const auto& c : snapshot->connectors()) {
    if (c.quarantined || c.spec.forwarding.tls == policy::ForwardTls::None ||
        c.spec.forwarding.smarthosts.empty()) {
      continue;
    }
    std::string error;
    loaded->forwardTls[c.index] = clientContext(c, error);
    if (!error.empty()) {
      return {nullptr, "ReceiveConnector " + c.id + ": CA Secret " +
                           c.spec.forwarding.caSecretName + " is unusable: " + error};
    }
  }
  for (const auto& c : snapshot->connectors()) {
    if (!c.spec.proxyProtocol || !c.spec.enabled) continue;
    for (const auto& b : c.spec.bindings) {
      auto& index = loaded->proxyTrustedByPort[b.port];
      for (const auto& r : c.spec.proxyTrustedRanges) index.add(r, c.index);
    }
  }
  for (auto& [port, index] : loaded->proxyTrustedByPort) index.build();
  loaded->snapshot = std::move(snapshot);
  return {std::move(loaded), ""};
}

ReceivedLoad prepareReceived(const ReceivedSnapshot& received, const std::string& pool) {
  ReceivedLoad load;
  if (received.pool != pool) {
    load.error = "the snapshot is for relay pool \"" + received.pool + "\", this relay serves \"" +
                 pool + "\"";
    return load;
  }
  // Byte for byte the operator's decoding (operator/src/reconciler.cpp, decodeObject): the same
  // source name and default namespace, one set in the order received.
  policy::ResourceSet set;
  std::string unreadable;
  for (const auto& object : received.objects) {
    policy::ManifestOptions options;
    options.defaultNamespace = object.ns;
    const size_t before = set.diagnostics.size();
    policy::decodeManifests(object.manifest, "kube-apiserver", set, options);
    for (size_t i = before; i < set.diagnostics.size(); ++i) {
      const auto& d = set.diagnostics[i];
      if (d.reason != "InvalidManifest") continue;
      if (!unreadable.empty()) unreadable += "; ";
      unreadable += object.kind + " " + object.ns + "/" + object.name + ": " + d.message;
    }
  }
  policy::CompileResult result = policy::compile(set, {pool, true});
  load.errors = result.errorCount();
  load.warnings = result.warningCount();
  if (result.snapshot->version() != received.version) {
    load.error = "the snapshot compiled to " + result.snapshot->version() + ", the operator sent " +
                 received.version;
    return load;
  }
  if (!unreadable.empty()) {
    load.error = "unreadable manifest: " + unreadable;
    return load;
  }
  PrepareResult prepared = prepare(result.snapshot);
  if (!prepared.policy) {
    load.error = prepared.error;
    return load;
  }
  load.policy = std::move(prepared.policy);
  return load;
}

std::string ManifestDirectory::fingerprint() const {
  std::vector<std::string> entries;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir_, ec)) {
    std::error_code ec2;
    auto size = e.file_size(ec2);
    auto time = e.last_write_time(ec2).time_since_epoch().count();
    entries.push_back(e.path().filename().string() + ":" + std::to_string(size) + ":" +
                      std::to_string(time));
  }
  if (ec) return "unreadable:" + ec.message();
  std::sort(entries.begin(), entries.end());
  std::string out;
  for (const auto& s : entries) out += s + "\n";
  return out;
}

std::optional<ManifestDirectory::Load> ManifestDirectory::reloadIfChanged() {
  std::string fp = fingerprint();
  if (fp == lastFingerprint_) return std::nullopt;
  lastFingerprint_ = fp;
  Load load;
  policy::ResourceSet set = policy::loadManifestDirectory(dir_);
  if (policy::hasUnreadableManifests(set)) {
    for (const auto& d : set.diagnostics) {
      if (d.reason == "InvalidManifest") {
        load.error += (load.error.empty() ? "" : "; ") + d.toString();
      }
    }
  }
  load.result = policy::compile(set, {pool_, true});
  return load;
}

}  // namespace kuberelay::relay
