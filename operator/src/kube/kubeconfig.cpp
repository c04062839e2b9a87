#include "kube/kubeconfig.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

// The policy library's libyaml tree (no yaml-cpp: it hangs on some malformed input).
#include "kuberelay/policy/yaml_tree.h"

namespace kuberelay::op {
namespace fs = std::filesystem;
namespace yaml = kuberelay::policy::yaml;

std::optional<std::string> readFile(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return std::nullopt;
  return buffer.str();
}

std::string trimToken(std::string token) {
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ' ||
                            token.back() == '\t')) {
    token.pop_back();
  }
  return token;
}

std::optional<std::string> decodeBase64(std::string_view text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  size_t padding = 0;
  for (char c : text) {
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      ++padding;
      continue;
    }
    if (padding) return std::nullopt;  // data after padding
    int v = value(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  if (bits >= 6 || padding > 2) return std::nullopt;
  return out;
}

namespace {

const yaml::Node* findNamed(const yaml::Node& list, const std::string& name) {
  if (!list.IsSequence()) return nullptr;
  for (size_t i = 0; i < list.size(); ++i) {
    const yaml::Node& entry = list[i];
    if (entry["name"].IsScalar() && entry["name"].Scalar() == name) return &entry;
  }
  return nullptr;
}

std::string scalar(const yaml::Node& node) { return node.IsScalar() ? node.Scalar() : ""; }

// "<key>-data" (base64) or "<key>" (a file, relative to the kubeconfig's directory).
std::string dataOrFile(const yaml::Node& section, const std::string& key, const fs::path& base,
                       const std::string& what) {
  std::string data = scalar(section[key + "-data"]);
  if (!data.empty()) {
    auto decoded = decodeBase64(data);
    if (!decoded) throw std::runtime_error(what + ": " + key + "-data is not valid base64");
    return *decoded;
  }
  std::string file = scalar(section[key]);
  if (file.empty()) return {};
  fs::path path = fs::path(file).is_absolute() ? fs::path(file) : base / file;
  auto content = readFile(path);
  if (!content) throw std::runtime_error(what + ": cannot read " + key + " " + path.string());
  return *content;
}

}  // namespace

ClusterConfig loadKubeconfig(const fs::path& file, const std::string& contextOverride) {
  auto text = readFile(file);
  if (!text) throw std::runtime_error("cannot read kubeconfig " + file.string());
  yaml::ParseResult parsed = yaml::parseAll(*text);
  if (!parsed.error.empty()) {
    throw std::runtime_error("kubeconfig " + file.string() + ": " + parsed.error);
  }
  if (parsed.documents.empty() || !parsed.documents[0].IsMap()) {
    throw std::runtime_error("kubeconfig " + file.string() + " is not a YAML object");
  }
  const yaml::Node& doc = parsed.documents[0];
  const std::string where = "kubeconfig " + file.string();
  std::string contextName =
      contextOverride.empty() ? scalar(doc["current-context"]) : contextOverride;
  if (contextName.empty()) throw std::runtime_error(where + ": no current-context");
  const yaml::Node* ctx = findNamed(doc["contexts"], contextName);
  if (!ctx) throw std::runtime_error(where + ": context \"" + contextName + "\" not found");
  const yaml::Node& context = (*ctx)["context"];
  std::string clusterName = scalar(context["cluster"]);
  std::string userName = scalar(context["user"]);
  const yaml::Node* clusterEntry = findNamed(doc["clusters"], clusterName);
  if (!clusterEntry)
    throw std::runtime_error(where + ": cluster \"" + clusterName + "\" not found");
  const yaml::Node& cluster = (*clusterEntry)["cluster"];
  const fs::path base = fs::absolute(file).parent_path();

  ClusterConfig out;
  out.source = where + " (context " + contextName + ")";
  out.server = scalar(cluster["server"]);
  while (!out.server.empty() && out.server.back() == '/') out.server.pop_back();
  if (out.server.empty()) throw std::runtime_error(where + ": cluster has no server");
  out.caPem = dataOrFile(cluster, "certificate-authority", base, where);
  out.insecureSkipTlsVerify = scalar(cluster["insecure-skip-tls-verify"]) == "true";

  if (!userName.empty()) {
    const yaml::Node* userEntry = findNamed(doc["users"], userName);
    if (!userEntry) throw std::runtime_error(where + ": user \"" + userName + "\" not found");
    const yaml::Node& user = (*userEntry)["user"];
    out.token = scalar(user["token"]);
    std::string tokenFile = scalar(user["tokenFile"]);
    if (!tokenFile.empty()) {
      out.tokenFile = fs::path(tokenFile).is_absolute() ? tokenFile : (base / tokenFile).string();
    }
    out.clientCertPem = dataOrFile(user, "client-certificate", base, where);
    out.clientKeyPem = dataOrFile(user, "client-key", base, where);
    if (out.clientCertPem.empty() != out.clientKeyPem.empty()) {
      throw std::runtime_error(where + ": user \"" + userName +
                               "\" has a client certificate without a key or a key without one");
    }
    if (user["exec"] || user["auth-provider"]) {
      if (out.token.empty() && out.tokenFile.empty() && out.clientCertPem.empty()) {
        throw std::runtime_error(where + ": user \"" + userName +
                                 "\" uses exec/auth-provider credentials, which are not supported");
      }
    }
  }
  return out;
}

std::optional<ClusterConfig> loadInCluster(const InClusterPaths& paths) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (!host || !*host || !port || !*port) return std::nullopt;
  fs::path tokenFile = paths.dir / "token";
  if (!fs::exists(tokenFile)) return std::nullopt;
  ClusterConfig out;
  std::string h = host;
  if (h.find(':') != std::string::npos) h = "[" + h + "]";  // IPv6
  out.server = "https://" + h + ":" + port;
  out.tokenFile = tokenFile.string();
  if (auto ca = readFile(paths.dir / "ca.crt")) out.caPem = *ca;
  out.source = "in-cluster (" + paths.dir.string() + ")";
  return out;
}

ClusterConfig resolveClusterConfig(const std::string& explicitPath,
                                   const std::string& contextOverride,
                                   const InClusterPaths& inCluster) {
  if (!explicitPath.empty()) return loadKubeconfig(explicitPath, contextOverride);
  if (const char* env = std::getenv("KUBECONFIG"); env && *env) {
    std::string list = env;
    size_t start = 0;
    while (start <= list.size()) {
      size_t end = list.find(':', start);
      if (end == std::string::npos) end = list.size();
      std::string file = list.substr(start, end - start);
      if (!file.empty() && fs::exists(file)) return loadKubeconfig(file, contextOverride);
      start = end + 1;
    }
  }
  if (auto config = loadInCluster(inCluster)) return *config;
  if (const char* home = std::getenv("HOME"); home && *home) {
    fs::path file = fs::path(home) / ".kube" / "config";
    if (fs::exists(file)) return loadKubeconfig(file, contextOverride);
  }
  throw std::runtime_error(
      "no API server configuration: pass --kubeconfig, set KUBECONFIG, run in a cluster or "
      "create ~/.kube/config");
}

}  // namespace kuberelay::op
