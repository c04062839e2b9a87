// The admin endpoints and the metrics text.
#include "admin_server.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "metrics.h"

namespace kuberelay::op {
namespace {

using ::testing::HasSubstr;

std::string httpGet(uint16_t port, const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return "connect failed";
  }
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n";
  (void)::send(fd, req.data(), req.size(), 0);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

TEST(AdminServer, ServesTheHandlersAnswers) {
  Metrics metrics;
  metrics.reconciled("ReceiveConnector", "updated");
  metrics.objectStates("ReceiveConnector", 3, 1, 2);
  metrics.watchRestart("Secret", "gone");
  metrics.compiled("sha256:abc", 1, 2);
  metrics.compiled("sha256:def", 0, 0);
  AdminServer server("127.0.0.1:0", [&](const std::string&, const std::string& path) {
    if (path == "/healthz") return AdminResponse{200, "text/plain", "ok\n"};
    if (path == "/metrics")
      return AdminResponse{200, "text/plain; version=0.0.4", metrics.render()};
    return AdminResponse{404, "text/plain", "not found\n"};
  });
  server.start();
  ASSERT_NE(server.port(), 0);
  EXPECT_THAT(httpGet(server.port(), "/healthz"), HasSubstr("HTTP/1.0 200 OK"));
  EXPECT_THAT(httpGet(server.port(), "/nope?x=1"), HasSubstr("HTTP/1.0 404"));
  std::string m = httpGet(server.port(), "/metrics");
  EXPECT_THAT(
      m,
      HasSubstr(
          "kuberelay_operator_reconciles_total{kind=\"ReceiveConnector\",result=\"updated\"} 1"));
  EXPECT_THAT(
      m, HasSubstr("kuberelay_operator_objects{kind=\"ReceiveConnector\",state=\"accepted\"} 3"));
  EXPECT_THAT(
      m, HasSubstr("kuberelay_operator_objects{kind=\"AcceptedDomain\",state=\"rejected\"} 0"));
  EXPECT_THAT(
      m, HasSubstr("kuberelay_operator_watch_restarts_total{kind=\"Secret\",reason=\"gone\"} 1"));
  EXPECT_THAT(m, HasSubstr("kuberelay_operator_policy_info{version=\"sha256:def\"} 1"));
  EXPECT_THAT(m, ::testing::Not(HasSubstr("sha256:abc")));
  server.stop();
}

TEST(AdminServer, RefusesAnAddressInUse) {
  AdminServer a("127.0.0.1:0",
                [](const std::string&, const std::string&) { return AdminResponse{}; });
  a.start();
  AdminServer b("127.0.0.1:" + std::to_string(a.port()),
                [](const std::string&, const std::string&) { return AdminResponse{}; });
  EXPECT_THROW(b.start(), std::runtime_error);
}

}  // namespace
}  // namespace kuberelay::op
