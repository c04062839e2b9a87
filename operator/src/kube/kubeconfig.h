// NAME
//   kubeconfig.h - where the API server is and how to authenticate to it
// DESCRIPTION
//   Resolved like controller-runtime's GetConfig: an explicit --kubeconfig, else $KUBECONFIG
//   (the first listed file that exists), else in-cluster (KUBERNETES_SERVICE_HOST/PORT, the
//   service-account token and CA bundle), else ~/.kube/config. From a kubeconfig: the current
//   context's cluster (server, certificate-authority-data or -file, insecure-skip-tls-verify) and
//   user (token, tokenFile, client-certificate/-key data or files). Relative file names are
//   relative to the kubeconfig's directory. Token files are not read here: the transport
//   re-reads them on every request (service-account tokens are rotated).
//   No HTTP library in here, so it is unit-tested on its own.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace kuberelay::op {

struct ClusterConfig {
  std::string server;  // "https://127.0.0.1:6443" (no trailing slash)
  std::string caPem;   // empty: the system trust store
  bool insecureSkipTlsVerify = false;
  std::string token;      // static bearer token
  std::string tokenFile;  // bearer token re-read from this file (service account)
  std::string clientCertPem;
  std::string clientKeyPem;
  std::string source;  // "kubeconfig /path (context x)" or "in-cluster", for logs
};

struct InClusterPaths {
  std::filesystem::path dir = "/var/run/secrets/kubernetes.io/serviceaccount";
};

// Throws std::runtime_error with a readable message.
ClusterConfig loadKubeconfig(const std::filesystem::path& file,
                             const std::string& contextOverride = {});
std::optional<ClusterConfig> loadInCluster(const InClusterPaths& paths = {});
// explicitPath from --kubeconfig (may be empty). Throws when nothing is usable.
ClusterConfig resolveClusterConfig(const std::string& explicitPath,
                                   const std::string& contextOverride = {},
                                   const InClusterPaths& inCluster = {});

// Decodes standard base64 (whitespace ignored); nullopt when invalid.
std::optional<std::string> decodeBase64(std::string_view text);
// Reads a whole file; nullopt when it cannot be read.
std::optional<std::string> readFile(const std::filesystem::path& file);
// A bearer token as read from a file: trailing whitespace trimmed.
std::string trimToken(std::string token);

}  // namespace kuberelay::op
