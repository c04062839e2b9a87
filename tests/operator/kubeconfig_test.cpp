// Where the API server is and how to authenticate: kubeconfig files and in-cluster config.
#include "kube/kubeconfig.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

namespace kuberelay::op {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class TempDir {
public:
  TempDir() {
    char tmpl[] = "/tmp/kuberelay-kubeconfig-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }
  fs::path write(const std::string& name, const std::string& content) const {
    fs::path p = path_ / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << content;
    return p;
  }

private:
  fs::path path_;
};

// Sets (or unsets) an environment variable for the scope.
class EnvVar {
public:
  EnvVar(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~EnvVar() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

private:
  const char* name_;
  std::optional<std::string> old_;
};

const char* kConfig = R"(apiVersion: v1
kind: Config
clusters:
- name: other
  cluster:
    server: https://10.0.0.1:6443
- name: test
  cluster:
    server: https://127.0.0.1:6443/
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCkNBCg==
users:
- name: admin
  user:
    token: secret-token
- name: certuser
  user:
    client-certificate: pki/client.crt
    client-key: pki/client.key
contexts:
- name: test
  context:
    cluster: test
    user: admin
- name: cert
  context:
    cluster: other
    user: certuser
current-context: test
)";

TEST(Kubeconfig, CurrentContextWithTokenAndCaData) {
  TempDir dir;
  auto file = dir.write("config", kConfig);
  ClusterConfig c = loadKubeconfig(file);
  EXPECT_EQ(c.server, "https://127.0.0.1:6443");
  EXPECT_EQ(c.caPem, "-----BEGIN CERTIFICATE-----\nCA\n");
  EXPECT_EQ(c.token, "secret-token");
  EXPECT_TRUE(c.clientCertPem.empty());
  EXPECT_FALSE(c.insecureSkipTlsVerify);
  EXPECT_THAT(c.source, HasSubstr("context test"));
}

TEST(Kubeconfig, ClientCertificateFilesAreRelativeToTheKubeconfig) {
  TempDir dir;
  auto file = dir.write("config", kConfig);
  dir.write("pki/client.crt", "CERT");
  dir.write("pki/client.key", "KEY");
  ClusterConfig c = loadKubeconfig(file, "cert");
  EXPECT_EQ(c.server, "https://10.0.0.1:6443");
  EXPECT_EQ(c.clientCertPem, "CERT");
  EXPECT_EQ(c.clientKeyPem, "KEY");
  EXPECT_TRUE(c.token.empty());
  EXPECT_TRUE(c.caPem.empty());
}

TEST(Kubeconfig, ReadableErrors) {
  TempDir dir;
  EXPECT_THROW(loadKubeconfig(dir.path() / "missing"), std::runtime_error);
  auto file = dir.write("config", kConfig);
  try {
    loadKubeconfig(file, "nope");
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("context \"nope\" not found"));
  }
  try {
    loadKubeconfig(file, "cert");  // its files do not exist
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("client.crt"));
  }
  auto bad = dir.write("bad", "{ not: [yaml");
  EXPECT_THROW(loadKubeconfig(bad), std::runtime_error);
}

TEST(Kubeconfig, ResolutionOrder) {
  TempDir dir;
  auto file = dir.write("config", kConfig);
  EnvVar host("KUBERNETES_SERVICE_HOST", nullptr);
  EnvVar home("HOME", dir.path().c_str());
  {
    EnvVar kc("KUBECONFIG",
              (dir.path() / "missing").string().append(":").append(file.string()).c_str());
    EXPECT_EQ(resolveClusterConfig("").server, "https://127.0.0.1:6443");
  }
  EnvVar kc("KUBECONFIG", nullptr);
  EXPECT_THROW(resolveClusterConfig(""), std::runtime_error);  // nothing at all
  dir.write(".kube/config", kConfig);
  EXPECT_EQ(resolveClusterConfig("").token, "secret-token");
  // An explicit --kubeconfig wins over everything.
  auto other = dir.write(
      "other", std::string(kConfig).replace(std::string(kConfig).find("current-context: test"), 21,
                                            "current-context: cert"));
  dir.write("pki/client.crt", "CERT");
  dir.write("pki/client.key", "KEY");
  EXPECT_EQ(resolveClusterConfig(other.string()).server, "https://10.0.0.1:6443");
}

TEST(InCluster, ServiceAccountTokenFileAndCa) {
  TempDir dir;
  dir.write("sa/token", "abc\n");
  dir.write("sa/ca.crt", "CA-BUNDLE");
  EnvVar host("KUBERNETES_SERVICE_HOST", "fd00::1");
  EnvVar port("KUBERNETES_SERVICE_PORT", "443");
  EnvVar kc("KUBECONFIG", nullptr);
  auto c = loadInCluster({dir.path() / "sa"});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->server, "https://[fd00::1]:443");
  EXPECT_EQ(c->tokenFile, (dir.path() / "sa" / "token").string());
  EXPECT_EQ(c->caPem, "CA-BUNDLE");
  EXPECT_TRUE(c->token.empty()) << "the token is re-read from its file on every request";
  EXPECT_EQ(resolveClusterConfig("", "", {dir.path() / "sa"}).source, c->source);
  EXPECT_FALSE(loadInCluster({dir.path() / "none"}));
}

TEST(Base64, DecodesStandardAlphabetAndRejectsGarbage) {
  EXPECT_EQ(decodeBase64("aGVsbG8="), "hello");
  EXPECT_EQ(decodeBase64("aGVs\nbG8h"), "hello!");
  EXPECT_EQ(decodeBase64(""), "");
  EXPECT_FALSE(decodeBase64("a$b="));
  EXPECT_FALSE(decodeBase64("aGVsbG8=x"));
  EXPECT_EQ(trimToken("tok\r\n"), "tok");
}

}  // namespace
}  // namespace kuberelay::op
