#include "admin_server.h"

#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "log.h"

namespace kuberelay::op {
namespace {

const char* statusText(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 503:
      return "Service Unavailable";
    default:
      return "Error";
  }
}

void writeAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

}  // namespace

AdminServer::AdminServer(std::string address, Handler handler)
    : address_(std::move(address)), handler_(std::move(handler)) {}

AdminServer::~AdminServer() { stop(); }

void AdminServer::start() {
  std::string host = address_, port;
  auto colon = address_.rfind(':');
  if (colon == std::string::npos)
    throw std::runtime_error("admin address " + address_ + " has no port");
  host = address_.substr(0, colon);
  port = address_.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) throw std::runtime_error("admin address " + address_ + ": " + gai_strerror(rc));
  std::string lastError = "no address";
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, 16) == 0) {
      sockaddr_storage ss{};
      socklen_t len = sizeof(ss);
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
      port_ = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                       : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
      listenFd_ = fd;
      break;
    }
    lastError = std::strerror(errno);
    ::close(fd);
  }
  ::freeaddrinfo(res);
  if (listenFd_ < 0) throw std::runtime_error("cannot listen on " + address_ + ": " + lastError);
  thread_ = std::thread([this] { serve(); });
}

void AdminServer::stop() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
  if (listenFd_ >= 0) {
    ::close(listenFd_);
    listenFd_ = -1;
  }
}

void AdminServer::serve() {
  while (!stopping_) {
    pollfd p{listenFd_, POLLIN, 0};
    int n = ::poll(&p, 1, 200);
    if (n <= 0) continue;
    int fd = ::accept4(listenFd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    timeval tv{2, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    try {
      handle(fd);
    } catch (const std::exception& e) {
      logWarn("admin request failed", {{"error", e.what()}});
    }
    ::close(fd);
  }
}

void AdminServer::handle(int fd) {
  std::string request;
  char buf[2048];
  while (request.find("\r\n\r\n") == std::string::npos &&
         request.find("\n\n") == std::string::npos && request.size() < 16384) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    request.append(buf, static_cast<size_t>(n));
  }
  auto lineEnd = request.find_first_of("\r\n");
  std::string line = request.substr(0, lineEnd);
  auto sp1 = line.find(' ');
  auto sp2 = sp1 == std::string::npos ? std::string::npos : line.find(' ', sp1 + 1);
  AdminResponse resp;
  if (sp1 == std::string::npos) {
    resp = {400, "text/plain; charset=utf-8", "bad request\n"};
  } else {
    std::string method = line.substr(0, sp1);
    std::string target =
        line.substr(sp1 + 1, sp2 == std::string::npos ? std::string::npos : sp2 - sp1 - 1);
    std::string path = target.substr(0, target.find('?'));
    if (method != "GET" && method != "HEAD") {
      resp = {405, "text/plain; charset=utf-8", "method not allowed\n"};
    } else {
      resp = handler_(method, path);
      if (method == "HEAD") resp.body.clear();
    }
  }
  std::string out = "HTTP/1.0 " + std::to_string(resp.status) + " " + statusText(resp.status) +
                    "\r\nContent-Type: " + resp.contentType +
                    "\r\nContent-Length: " + std::to_string(resp.body.size()) +
                    "\r\nConnection: close\r\n\r\n" + resp.body;
  writeAll(fd, out);
}

}  // namespace kuberelay::op
