// NAME
//   cpprest_kube_api.h - KubeApi over HTTPS with cpprestsdk (no cpprest types in this header)
// DESCRIPTION
//   Bearer token (static, or re-read from its file on every request: service-account tokens
//   are rotated), client certificate and key, the cluster's CA (or the system trust store).
//   Plain requests use one shared client with an inactivity timeout; each watch has its own
//   client whose inactivity timeout is longer than the watch's timeoutSeconds, and its body is
//   read one line (one event) at a time as the chunks arrive.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "kube/kubeconfig.h"
#include "kuberelay/operator/kube_api.h"

namespace kuberelay::op {

struct CpprestOptions {
  std::chrono::seconds requestTimeout{30};
  // Added to a watch's timeoutSeconds for its client's inactivity timeout: a silent stream
  // longer than that (a half-open connection) is given up and re-watched.
  std::chrono::seconds watchSlack{30};
  std::string userAgent = "kuberelay-operator";
};

// Throws std::runtime_error when the TLS material cannot be loaded.
std::unique_ptr<KubeApi> makeCpprestKubeApi(const ClusterConfig& config,
                                            const CpprestOptions& options = {});

}  // namespace kuberelay::op
