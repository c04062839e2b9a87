// NAME
//   admin_server.h - a tiny HTTP/1.0 server for /healthz, /readyz and /metrics
// DESCRIPTION
//   Plain POSIX sockets on one thread (no cpprest or asio here: the admin port serves a few
//   scrapes a minute). One request per connection, read with a timeout, answered, closed.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>

namespace kuberelay::op {

struct AdminResponse {
  int status = 200;
  std::string contentType = "text/plain; charset=utf-8";
  std::string body;
};

class AdminServer {
public:
  using Handler = std::function<AdminResponse(const std::string& method, const std::string& path)>;

  // address: "127.0.0.1:9091", "[::1]:9091", "0.0.0.0:9091" (port 0: any free port).
  AdminServer(std::string address, Handler handler);
  ~AdminServer();

  // Binds and starts serving; throws std::runtime_error when the address cannot be bound.
  void start();
  void stop();
  uint16_t port() const { return port_; }

private:
  void serve();
  void handle(int fd);

  std::string address_;
  Handler handler_;
  int listenFd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace kuberelay::op
