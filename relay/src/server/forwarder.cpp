#include "forwarder.h"

#include <fcntl.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/connect.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/read_until.hpp>
#include <asio/ssl/host_name_verification.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <random>

#include "kuberelay/smtp/base64.h"
#include "log.h"
#include "metrics.h"

namespace kuberelay::relay {
namespace {

using asio::awaitable;
using asio::ip::tcp;
constexpr auto kNoThrow = asio::experimental::as_tuple(asio::use_awaitable);

NextHopReply reply(uint16_t code, std::string enhanced, std::string text) {
  return NextHopReply{code, std::move(enhanced), std::move(text)};
}

std::string newMessageId() {
  static std::atomic<uint64_t> counter{0};
  static const uint64_t seed = std::random_device{}() ^ (uint64_t(std::random_device{}()) << 32);
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%016llx%08llx", static_cast<unsigned long long>(seed),
                static_cast<unsigned long long>(++counter));
  return buf;
}

// --------------------------------------------------------------------------------------------
// Drop directory

class DropDirectoryForwarder final : public Forwarder {
public:
  DropDirectoryForwarder(std::string dir, const ForwarderContext& ctx)
      : dir_(std::move(dir)), ctx_(ctx) {}
  ~DropDirectoryForwarder() override { abandon(); }

  awaitable<NextHopReply> begin(std::string sender, smtp::MailParameters) override {
    abandon();
    sender_ = std::move(sender);
    recipients_.clear();
    co_return reply(250, "2.1.0", "Sender OK");
  }

  awaitable<NextHopReply> addRecipient(std::string recipient) override {
    recipients_.push_back(std::move(recipient));
    co_return reply(250, "2.1.5", "Recipient OK");
  }

  awaitable<NextHopReply> beginData(std::string trace) override {
    id_ = newMessageId();
    tmpPath_ = dir_ + "/.tmp-" + id_;
    fd_ = ::open(tmpPath_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd_ < 0 && errno == ENOENT) {  // first message: create the directory
      std::error_code ec;
      std::filesystem::create_directories(dir_, ec);
      fd_ = ::open(tmpPath_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    }
    if (fd_ < 0) {
      log("error", "drop directory not writable", {{"path", tmpPath_}, {"error", strerror(errno)}});
      co_return reply(451, "4.3.0", "Temporary local problem, please try again later");
    }
    // The envelope, as Exchange's pickup/replay directories keep it.
    buffer_ = "X-Sender: " + sender_ + "\r\n";
    for (const auto& r : recipients_) buffer_ += "X-Receiver: " + r + "\r\n";
    buffer_ += trace;
    co_return reply(354, "", "Start mail input; end with <CRLF>.<CRLF>");
  }

  awaitable<void> chunk(std::string_view bytes) override {
    buffer_.append(bytes);
    if (buffer_.size() >= 256 * 1024) flush();
    co_return;
  }

  awaitable<NextHopReply> endOfData(uint64_t) override {
    flush();
    if (failed_ || fd_ < 0) {
      abandon();
      co_return reply(451, "4.3.0", "Could not write the message; try again later");
    }
    // fsync + rename + directory fsync off the I/O thread: the 250 means "on disk".
    int fd = fd_;
    fd_ = -1;
    std::string tmp = tmpPath_, final = dir_ + "/" + id_ + ".eml", dir = dir_;
    bool ok =
        co_await asio::co_spawn(*ctx_.blocking, commit(fd, tmp, final, dir), asio::use_awaitable);
    tmpPath_.clear();
    if (!ok) co_return reply(451, "4.3.0", "Could not write the message; try again later");
    co_return reply(250, "2.6.0", "<" + id_ + "> Queued mail for delivery");
  }

  awaitable<void> reset() override {
    abandon();
    co_return;
  }

private:
  static awaitable<bool> commit(int fd, std::string tmp, std::string final, std::string dir) {
    bool ok = ::fsync(fd) == 0;
    ok = (::close(fd) == 0) && ok;
    if (ok) ok = ::rename(tmp.c_str(), final.c_str()) == 0;
    if (ok) {
      int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      ok = dfd >= 0 && ::fsync(dfd) == 0;
      if (dfd >= 0) ::close(dfd);
    }
    if (!ok) {
      log("error", "drop directory write failed", {{"path", final}, {"error", strerror(errno)}});
      ::unlink(tmp.c_str());
    }
    co_return ok;
  }

  void flush() {
    const char* p = buffer_.data();
    size_t left = buffer_.size();
    while (left > 0 && fd_ >= 0) {
      ssize_t n = ::write(fd_, p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        failed_ = true;
        break;
      }
      p += n;
      left -= static_cast<size_t>(n);
    }
    buffer_.clear();
  }

  void abandon() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    if (!tmpPath_.empty()) ::unlink(tmpPath_.c_str());
    tmpPath_.clear();
    buffer_.clear();
    failed_ = false;
  }

  std::string dir_;
  ForwarderContext ctx_;
  std::string sender_;
  std::vector<std::string> recipients_;
  std::string id_;
  std::string tmpPath_;
  std::string buffer_;
  int fd_ = -1;
  bool failed_ = false;
};

// --------------------------------------------------------------------------------------------
// Smarthost: an SMTP client session, pooled between transactions.

using Clock = std::chrono::steady_clock;

}  // namespace

struct NextHopConnection {
  enum class State : uint8_t { Connecting, Active, Idle, Closed };

  NextHopConnection(asio::any_io_executor io, std::string target_, Metrics* metrics)
      : socket(io), watchdog(io), target(std::move(target_)), opened(Clock::now()) {
    if (metrics) {
      activeGauge = &metrics->upstream(target, "active");
      idleGauge = &metrics->upstream(target, "idle");
    }
  }
  ~NextHopConnection() { setState(State::Closed); }

  void setState(State next) {
    if (next == state) return;
    if (auto* g = gauge(state)) g->Decrement();
    if (auto* g = gauge(next)) g->Increment();
    state = next;
  }
  // Nothing buffered, nothing arrived, not closed by the peer: safe to start a transaction on.
  bool looksAlive() {
    if (closing || !input.empty() || !socket.is_open()) return false;
    if (tls && SSL_pending(tls->native_handle()) > 0) return false;
    char byte;
    ssize_t n = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }

  tcp::socket socket;
  std::shared_ptr<asio::ssl::context> tlsContext;  // outlives the stream that uses it
  std::unique_ptr<asio::ssl::stream<tcp::socket&>> tls;
  asio::steady_timer watchdog;
  std::string input;
  std::string target;
  std::string poolKey;  // the smarthost and the connector profile that set it up
  Clock::time_point opened, idleSince;
  State state = State::Connecting;
  bool closing = false;  // the peer said 421: never reuse
  bool dirty = false;    // parked inside a transaction: RSET before the next one
  bool pipelining = false, size = false, eightBit = false, smtputf8 = false, starttls = false;
  bool authPlain = false;

private:
  prometheus::Gauge* gauge(State s) const {
    return s == State::Active ? activeGauge : s == State::Idle ? idleGauge : nullptr;
  }
  prometheus::Gauge* activeGauge = nullptr;
  prometheus::Gauge* idleGauge = nullptr;
};

// Best-effort QUIT (RFC 5321 4.1.1.10: the client should not just drop the connection), then
// close; bounded by two seconds.
awaitable<void> NextHopPool::quitAndClose(std::shared_ptr<NextHopConnection> c) {
  std::weak_ptr<NextHopConnection> weak = c;
  c->watchdog.expires_after(std::chrono::seconds(2));
  c->watchdog.async_wait([weak](const asio::error_code& ec) {
    if (auto conn = weak.lock(); conn && !ec) {
      asio::error_code ignored;
      conn->socket.close(ignored);
    }
  });
  static constexpr std::string_view kQuit = "QUIT\r\n";
  asio::error_code err;
  if (c->tls) {
    std::tie(err, std::ignore) = co_await asio::async_write(*c->tls, asio::buffer(kQuit), kNoThrow);
    if (!err) {
      std::tie(err, std::ignore) = co_await asio::async_read_until(
          *c->tls, asio::dynamic_buffer(c->input, 4096), "\n", kNoThrow);
    }
  } else {
    std::tie(err, std::ignore) =
        co_await asio::async_write(c->socket, asio::buffer(kQuit), kNoThrow);
    if (!err) {
      std::tie(err, std::ignore) = co_await asio::async_read_until(
          c->socket, asio::dynamic_buffer(c->input, 4096), "\n", kNoThrow);
    }
  }
  c->watchdog.cancel();
  asio::error_code ignored;
  c->socket.close(ignored);
  --retiring_;
}

void NextHopPool::retire(std::shared_ptr<NextHopConnection> c) {
  c->setState(NextHopConnection::State::Closed);
  if (!c->socket.is_open()) return;
  ++retiring_;
  asio::co_spawn(io_, quitAndClose(std::move(c)), asio::detached);
}

NextHopPool::NextHopPool(asio::any_io_executor io, Options options)
    : io_(std::move(io)), options_(options), sweeper_(io_) {}

NextHopPool::~NextHopPool() = default;

std::shared_ptr<NextHopConnection> NextHopPool::take(const std::string& key) {
  auto it = idle_.find(key);
  if (it == idle_.end()) return nullptr;
  auto& list = it->second;
  const auto now = Clock::now();
  std::shared_ptr<NextHopConnection> found;
  while (!list.empty() && !found) {
    auto c = std::move(list.back());  // most recently used first: the rest can expire
    list.pop_back();
    if (now - c->idleSince < options_.idleTimeout && now - c->opened < kMaxAge && c->looksAlive()) {
      c->setState(NextHopConnection::State::Active);
      found = std::move(c);
    } else {
      retire(std::move(c));
    }
  }
  if (list.empty()) idle_.erase(it);
  return found;
}

void NextHopPool::give(std::shared_ptr<NextHopConnection> c) {
  const auto now = Clock::now();
  const std::string& key = c->poolKey;
  auto& list = idle_[key];
  if (!enabled() || c->closing || now - c->opened >= kMaxAge ||
      list.size() >= options_.maxIdlePerKey) {
    if (list.empty()) idle_.erase(key);
    retire(std::move(c));
    return;
  }
  c->idleSince = now;
  c->setState(NextHopConnection::State::Idle);
  list.push_back(std::move(c));
  armSweeper();
}

void NextHopPool::sweep() {
  const auto now = Clock::now();
  for (auto it = idle_.begin(); it != idle_.end();) {
    auto& list = it->second;
    std::erase_if(list, [&](std::shared_ptr<NextHopConnection>& c) {
      bool keep = now - c->idleSince < options_.idleTimeout && c->looksAlive();
      if (!keep) retire(std::move(c));
      return !keep;
    });
    it = list.empty() ? idle_.erase(it) : std::next(it);
  }
  if (!idle_.empty()) armSweeper();
}

void NextHopPool::armSweeper() {
  if (sweeping_) return;
  sweeping_ = true;
  sweeper_.expires_after(std::max<std::chrono::milliseconds>(options_.idleTimeout / 2,
                                                             std::chrono::milliseconds(100)));
  sweeper_.async_wait([this](const asio::error_code& ec) {
    sweeping_ = false;
    if (!ec) sweep();
  });
}

void NextHopPool::closeAll() {
  for (auto& [key, list] : idle_) {
    for (auto& c : list) retire(std::move(c));
  }
  idle_.clear();
  sweeper_.cancel();
}

size_t NextHopPool::idleCount() const {
  size_t n = 0;
  for (const auto& [key, list] : idle_) n += list.size();
  return n;
}

namespace {

class SmarthostForwarder final : public Forwarder {
public:
  SmarthostForwarder(const policy::CompiledConnector& c, const ForwarderContext& ctx)
      : hosts_(c.spec.forwarding.smarthosts),
        tlsMode_(c.spec.forwarding.tls),
        username_(c.forwardUsername),
        password_(c.forwardPassword),
        ctx_(ctx) {
    // Everything that shapes a next-hop session besides its address: sessions are shared only
    // between connectors that would have set them up the same way.
    const std::string profile = std::to_string(static_cast<int>(tlsMode_)) + "|" + username_ + "|" +
                                std::to_string(std::hash<std::string>{}(password_)) + "|" +
                                std::to_string(std::hash<std::string>{}(c.forwardCaPem));
    for (const auto& host : hosts_) poolKeys_.push_back(host + "|" + profile);
    if (!ctx_.clientTls) tlsMode_ = policy::ForwardTls::None;
  }
  ~SmarthostForwarder() override {
    if (conn_ && !inData_ && ctx_.pool) {
      conn_->dirty = inTransaction_;
      ctx_.pool->give(std::move(conn_));
    }
    drop();
  }

  awaitable<NextHopReply> begin(std::string sender, smtp::MailParameters params) override {
    started_ = Clock::now();
    if (conn_ && inTransaction_) conn_->dirty = true;
    for (int attempt = 0;; ++attempt) {
      bool reused = false;
      if (!conn_) {
        for (size_t i = 0; i < hosts_.size() && !conn_ && ctx_.pool; ++i) {
          conn_ = ctx_.pool->take(poolKeys_[i]);
        }
        reused = conn_ != nullptr;
        if (conn_) {
          current_ = conn_->target;
        } else {
          NextHopReply r = co_await connectAny();
          if (r.code >= 400) co_return r;
        }
      }
      if (conn_->dirty) {
        NextHopReply r = co_await command("RSET\r\n");
        if (conn_ && r.code != 250) drop();
        if (!conn_) {
          if (attempt == 0) continue;
          co_return reply(451, "4.4.2", "Connection to the next hop was lost");
        }
        conn_->dirty = false;
      }
      std::string cmd = "MAIL FROM:<" + sender + ">";
      if (params.size && conn_->size) cmd += " SIZE=" + std::to_string(*params.size);
      if (params.body == smtp::BodyType::EightBitMime && conn_->eightBit) cmd += " BODY=8BITMIME";
      if (params.smtpUtf8) {
        if (!conn_->smtputf8) {
          release();
          co_return reply(451, "4.5.3", "Next hop does not support SMTPUTF8");
        }
        cmd += " SMTPUTF8";
      }
      inTransaction_ = true;
      NextHopReply r = co_await command(cmd + "\r\n");
      // A pooled session the next hop closed while it was idle (and the peek did not see it
      // yet): nothing was started there, so start again on a fresh one.
      if (!conn_ && reused && attempt == 0) continue;
      if (ctx_.metrics && conn_) ctx_.metrics->upstreamSession(current_, reused);
      co_return r;
    }
  }

  awaitable<NextHopReply> addRecipient(std::string recipient) override {
    NextHopReply r = co_await command("RCPT TO:<" + recipient + ">\r\n");
    co_return r;
  }

  awaitable<NextHopReply> beginData(std::string trace) override {
    NextHopReply r = co_await command("DATA\r\n");
    if (r.code == 354) {
      out_ = std::move(trace);
      atLineStart_ = true;
      inData_ = true;
    }
    co_return r;
  }

  awaitable<void> chunk(std::string_view bytes) override {
    // Dot-stuffing (RFC 5321 4.5.2) while copying into the send buffer, a line at a time.
    while (!bytes.empty()) {
      if (atLineStart_ && bytes.front() == '.') out_ += '.';
      size_t nl = bytes.find('\n');
      size_t take = nl == std::string_view::npos ? bytes.size() : nl + 1;
      out_.append(bytes.data(), take);
      atLineStart_ = nl != std::string_view::npos;
      bytes.remove_prefix(take);
    }
    if (out_.size() >= 64 * 1024 && conn_) {
      bool ok = co_await write(out_);
      out_.clear();
      if (!ok) writeFailed_ = true;
    }
  }

  awaitable<NextHopReply> endOfData(uint64_t) override {
    if (!atLineStart_) out_ += "\r\n";
    out_ += ".\r\n";
    NextHopReply r;
    if (writeFailed_ || !conn_) {
      r = reply(451, "4.4.2", "Connection to the next hop was lost during DATA");
    } else {
      bool ok = co_await write(out_);
      if (ok) {
        r = co_await readReply();
      } else {
        r = reply(451, "4.4.2", "Connection to the next hop was lost during DATA");
      }
    }
    out_.clear();
    writeFailed_ = false;
    inTransaction_ = false;
    inData_ = false;
    release();
    double seconds = std::chrono::duration<double>(Clock::now() - started_).count();
    if (ctx_.metrics)
      ctx_.metrics->forward(current_, seconds,
                            r.code < 400   ? ""
                            : r.code < 500 ? "transient"
                                           : "permanent");
    co_return r;
  }

  awaitable<void> reset() override {
    out_.clear();
    writeFailed_ = false;
    if (conn_ && inData_) {
      drop();  // inside DATA the only safe reset is to drop the connection: nothing is delivered
    } else if (conn_ && inTransaction_) {
      NextHopReply r = co_await command("RSET\r\n");
      if (conn_ && r.code != 250) drop();
    }
    inTransaction_ = false;
    inData_ = false;
    release();
  }

private:
  // Between transactions the session goes back to the pool (without a pool it stays with us).
  void release() {
    if (!conn_ || !ctx_.pool || inTransaction_ || inData_) return;
    ctx_.pool->give(std::move(conn_));
    conn_.reset();
  }

  awaitable<NextHopReply> connectAny() {
    NextHopReply last = reply(451, "4.4.1", "No next hop is reachable; try again later");
    for (size_t i = 0; i < hosts_.size(); ++i) {
      const std::string& target = hosts_[i];
      size_t colon = target.rfind(':');
      std::string host = target.substr(0, colon), port = target.substr(colon + 1);
      if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
      conn_ = std::make_shared<NextHopConnection>(ctx_.io, target, ctx_.metrics);
      conn_->poolKey = poolKeys_[i];
      current_ = target;
      tcp::resolver resolver(ctx_.io);
      arm();
      auto [rerr, endpoints] = co_await resolver.async_resolve(host, port, kNoThrow);
      if (rerr) {
        fail(target, "resolve", rerr.message());
        continue;
      }
      auto [cerr, ep] = co_await asio::async_connect(conn_->socket, endpoints, kNoThrow);
      disarm();
      if (cerr) {
        fail(target, "connect", cerr.message());
        continue;
      }
      conn_->socket.set_option(tcp::no_delay(true));
      NextHopReply greeting = co_await readReply();
      if (greeting.code != 220) {
        last = temporary(greeting);
        fail(target, "greeting", greeting.text);
        continue;
      }
      NextHopReply hello = co_await ehlo();
      if (hello.code != 250) {
        last = temporary(hello);
        fail(target, "ehlo", hello.text);
        continue;
      }
      if (tlsMode_ != policy::ForwardTls::None &&
          (conn_->starttls || tlsMode_ == policy::ForwardTls::Required)) {
        if (!conn_->starttls) {
          last = reply(451, "4.7.5", "Next hop does not offer STARTTLS and TLS is required");
          fail(target, "tls", "STARTTLS not offered");
          continue;
        }
        if (!co_await startTls(host)) {
          last = reply(451, "4.7.5", "TLS to the next hop failed");
          fail(target, "tls", "handshake failed");
          continue;
        }
        hello = co_await ehlo();
        if (hello.code != 250) {
          last = temporary(hello);
          fail(target, "ehlo", hello.text);
          continue;
        }
      }
      if (!username_.empty()) {
        if (!conn_->tls || !conn_->authPlain) {
          last = reply(451, "4.7.0", "Cannot authenticate to the next hop");
          fail(target, "auth",
               conn_->tls ? "AUTH PLAIN not offered" : "refusing to send credentials without TLS");
          continue;
        }
        std::string token = std::string(1, '\0') + username_ + std::string(1, '\0') + password_;
        NextHopReply a = co_await command("AUTH PLAIN " + smtp::encodeBase64(token) + "\r\n");
        if (a.code != 235) {
          last = reply(451, "4.7.0", "Next hop refused our credentials");
          fail(target, "auth", a.text);
          continue;
        }
      }
      conn_->setState(NextHopConnection::State::Active);
      co_return reply(250, "2.0.0", "connected");
    }
    conn_.reset();
    co_return last;
  }

  static NextHopReply temporary(const NextHopReply& r) {
    if (r.code >= 400 && r.code < 500) return r;
    return reply(451, "4.4.0", "Next hop failed: " + std::to_string(r.code) + " " + r.text);
  }

  void fail(const std::string& target, const char* kind, const std::string& detail) {
    log("warn", "next hop failed", {{"smarthost", target}, {"stage", kind}, {"error", detail}});
    if (ctx_.metrics) ctx_.metrics->forward(target, 0, kind);
    drop();
  }

  awaitable<NextHopReply> ehlo() {
    NextHopReply r = co_await command("EHLO " + ctx_.hostName + "\r\n");
    if (r.code != 250) co_return r;
    // The whole multi-line text is in r.text, one capability per line.
    auto& c = *conn_;
    size_t pos = 0;
    while (pos < r.text.size()) {
      size_t nl = r.text.find('\n', pos);
      std::string line = r.text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
      pos = nl == std::string::npos ? r.text.size() : nl + 1;
      for (char& ch : line) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      if (line == "PIPELINING") c.pipelining = true;
      if (line.rfind("SIZE", 0) == 0) c.size = true;
      if (line == "8BITMIME") c.eightBit = true;
      if (line == "SMTPUTF8") c.smtputf8 = true;
      if (line == "STARTTLS") c.starttls = true;
      if (line.rfind("AUTH", 0) == 0 && line.find("PLAIN") != std::string::npos) c.authPlain = true;
    }
    co_return r;
  }

  awaitable<bool> startTls(const std::string& host) {
    NextHopReply r = co_await command("STARTTLS\r\n");
    if (r.code != 220) co_return false;
    conn_->tlsContext = ctx_.clientTls;
    conn_->tls = std::make_unique<asio::ssl::stream<tcp::socket&>>(conn_->socket, *ctx_.clientTls);
    SSL_set_tlsext_host_name(conn_->tls->native_handle(), host.c_str());
    if (tlsMode_ == policy::ForwardTls::Required) {
      conn_->tls->set_verify_callback(asio::ssl::host_name_verification(host));
    }
    conn_->input.clear();
    arm();
    auto [err] = co_await conn_->tls->async_handshake(asio::ssl::stream_base::client, kNoThrow);
    disarm();
    if (err) conn_->tls.reset();
    co_return !err;
  }

  awaitable<NextHopReply> command(std::string line) {
    if (!conn_) co_return reply(451, "4.4.2", "Connection to the next hop was lost");
    if (!co_await write(line)) co_return reply(451, "4.4.2", "Connection to the next hop was lost");
    NextHopReply r = co_await readReply();
    co_return r;
  }

  awaitable<bool> write(std::string_view data) {
    if (!conn_) co_return false;
    auto c = conn_;
    arm();
    asio::error_code err;
    if (c->tls) {
      std::tie(err, std::ignore) =
          co_await asio::async_write(*c->tls, asio::buffer(data), kNoThrow);
    } else {
      std::tie(err, std::ignore) =
          co_await asio::async_write(c->socket, asio::buffer(data), kNoThrow);
    }
    disarm();
    if (err) {
      fail(current_, "write", err.message());
      co_return false;
    }
    co_return true;
  }

  // Reads one (possibly multi-line) reply; text lines joined with '\n' (without the codes).
  awaitable<NextHopReply> readReply() {
    NextHopReply r;
    auto c = conn_;
    for (int lines = 0; c && lines < 100; ++lines) {
      arm();
      asio::error_code err;
      size_t n = 0;
      if (c->tls) {
        std::tie(err, n) = co_await asio::async_read_until(
            *c->tls, asio::dynamic_buffer(c->input, 65536), "\n", kNoThrow);
      } else {
        std::tie(err, n) = co_await asio::async_read_until(
            c->socket, asio::dynamic_buffer(c->input, 65536), "\n", kNoThrow);
      }
      disarm();
      if (err) {
        fail(current_, "read", err.message());
        co_return reply(451, "4.4.2", "Connection to the next hop was lost");
      }
      std::string line = c->input.substr(0, n);
      c->input.erase(0, n);
      while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
      uint16_t code = 0;
      if (line.size() < 3 ||
          std::from_chars(line.data(), line.data() + 3, code).ec != std::errc()) {
        fail(current_, "protocol", "malformed reply");
        co_return reply(451, "4.4.2", "The next hop sent a malformed reply");
      }
      r.code = code;
      if (code == 421) c->closing = true;  // the next hop is closing this session
      bool more = line.size() > 3 && line[3] == '-';
      std::string text = line.size() > 4 ? line.substr(4) : "";
      if (!r.text.empty()) r.text += '\n';
      r.text += text;
      if (!more) break;
    }
    // Split off an enhanced status code from the last line's text ("2.1.0 Ok").
    size_t lastLine = r.text.rfind('\n');
    lastLine = lastLine == std::string::npos ? 0 : lastLine + 1;
    std::string_view t(r.text);
    t = t.substr(lastLine);
    size_t sp = t.find(' ');
    std::string_view first = t.substr(0, sp);
    if (first.size() >= 5 && (first[0] == '2' || first[0] == '4' || first[0] == '5') &&
        first[1] == '.') {
      r.enhanced = std::string(first);
      std::string rest = sp == std::string_view::npos ? "" : std::string(t.substr(sp + 1));
      r.text = r.text.substr(0, lastLine) + rest;
    }
    // The client sees the next hop's last line only (multi-line text is the EHLO case).
    co_return r;
  }

  void arm() {
    if (!conn_) return;
    std::weak_ptr<NextHopConnection> weak = conn_;
    conn_->watchdog.expires_after(ctx_.timeout);
    conn_->watchdog.async_wait([weak](const asio::error_code& ec) {
      if (ec) return;
      if (auto c = weak.lock()) {
        asio::error_code ignored;
        c->socket.close(ignored);  // cancels the pending operation: the caller sees an error
      }
    });
  }
  void disarm() {
    if (conn_) conn_->watchdog.cancel();
  }

  void drop() {
    if (!conn_) return;
    asio::error_code ignored;
    conn_->watchdog.cancel();
    conn_->socket.close(ignored);
    conn_.reset();
    inTransaction_ = false;
    inData_ = false;
  }

  std::vector<std::string> hosts_;
  policy::ForwardTls tlsMode_;
  std::string username_;
  std::string password_;
  ForwarderContext ctx_;
  std::vector<std::string> poolKeys_;  // by smarthost: its address and this connector's profile
  std::shared_ptr<NextHopConnection> conn_;
  std::string current_;
  std::string out_;
  bool atLineStart_ = true;
  bool inTransaction_ = false;
  bool inData_ = false;
  bool writeFailed_ = false;
  std::chrono::steady_clock::time_point started_;
};

}  // namespace

std::unique_ptr<Forwarder> makeForwarder(const policy::CompiledConnector& connector,
                                         const ForwarderContext& context) {
  if (!connector.spec.forwarding.dropDirectory.empty()) {
    return std::make_unique<DropDirectoryForwarder>(connector.spec.forwarding.dropDirectory,
                                                    context);
  }
  return std::make_unique<SmarthostForwarder>(connector, context);
}

}  // namespace kuberelay::relay
