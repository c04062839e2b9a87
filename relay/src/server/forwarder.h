// NAME
//   forwarder.h - where accepted mail goes: the next hop, in-line, or a drop directory
// DESCRIPTION
//   The session hands each step of a transaction to a Forwarder and relays its verdict to the
//   client, so a client hears 250 for its message only after the next hop (or the disk) has
//   taken it. Every failure is a 4xx: the client keeps the message and retries.
//   SmarthostForwarder mirrors MAIL, RCPT and DATA to the connector's smarthosts (tried in
//   order), streaming the content with dot-stuffing. Between transactions its next-hop session
//   goes back to a NextHopPool, so the next transaction (from any client) skips connect, EHLO,
//   STARTTLS and AUTH. DropDirectoryForwarder writes one .eml file per message: temporary file,
//   fsync, rename, fsync of the directory, then 250.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl/context.hpp>
#include <asio/ssl/stream.hpp>
#include <asio/steady_timer.hpp>
#include <asio/thread_pool.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "kuberelay/policy/reply.h"
#include "kuberelay/policy/snapshot.h"
#include "kuberelay/smtp/command.h"

namespace kuberelay::relay {

class Metrics;

// A reply from a next hop, owning its text.
struct NextHopReply {
  uint16_t code = 0;
  std::string enhanced;
  std::string text;
  policy::Reply view() const { return policy::Reply{code, enhanced, text}; }
};

class Forwarder {
public:
  virtual ~Forwarder() = default;
  virtual asio::awaitable<NextHopReply> begin(std::string sender, smtp::MailParameters params) = 0;
  virtual asio::awaitable<NextHopReply> addRecipient(std::string recipient) = 0;
  // `trace` is the Received: header (with CRLF) to put before the client's content.
  virtual asio::awaitable<NextHopReply> beginData(std::string trace) = 0;
  // Decoded content (CRLF line endings, not dot-stuffed). May buffer.
  virtual asio::awaitable<void> chunk(std::string_view bytes) = 0;
  virtual asio::awaitable<NextHopReply> endOfData(uint64_t size) = 0;
  // Abandon the current transaction; nothing of it may be delivered.
  virtual asio::awaitable<void> reset() = 0;
};

struct NextHopConnection;

// Idle next-hop sessions by smarthost and forwarding profile (TLS mode, trust, credentials), as
// Postfix's connection cache keeps them. Single-threaded: used from the relay's io_context only.
// A pooled session is handed out only if the peer has not closed it or sent anything (a peek on
// the socket), is younger than kMaxAge (so traffic returns to a recovered primary smarthost)
// and has been idle less than the idle timeout; the rest get QUIT and are closed.
class NextHopPool {
public:
  struct Options {
    std::chrono::milliseconds idleTimeout{10000};  // 0: no pooling
    size_t maxIdlePerKey = 32;
  };
  static constexpr std::chrono::seconds kMaxAge{300};

  NextHopPool(asio::any_io_executor io, Options options);
  ~NextHopPool();
  bool enabled() const { return options_.idleTimeout.count() > 0; }
  std::shared_ptr<NextHopConnection> take(const std::string& key);
  void give(std::shared_ptr<NextHopConnection> connection);  // under its poolKey
  void closeAll();                                           // drain: QUIT every idle session
  size_t idleCount() const;
  size_t retiring() const { return retiring_; }  // QUITs still in flight

private:
  void sweep();
  void retire(std::shared_ptr<NextHopConnection> connection);
  asio::awaitable<void> quitAndClose(std::shared_ptr<NextHopConnection> connection);
  void armSweeper();
  asio::any_io_executor io_;
  Options options_;
  asio::steady_timer sweeper_;
  bool sweeping_ = false;
  size_t retiring_ = 0;
  std::unordered_map<std::string, std::vector<std::shared_ptr<NextHopConnection>>> idle_;
};

struct ForwarderContext {
  asio::any_io_executor io;
  asio::thread_pool* blocking = nullptr;  // fsync and the like
  Metrics* metrics = nullptr;
  std::string hostName;  // our EHLO name
  std::chrono::milliseconds timeout{60000};
  std::shared_ptr<asio::ssl::context> clientTls;  // STARTTLS to the smarthost; null: no TLS
  NextHopPool* pool = nullptr;                    // null: one next-hop session per client session
};

std::unique_ptr<Forwarder> makeForwarder(const policy::CompiledConnector& connector,
                                         const ForwarderContext& context);

}  // namespace kuberelay::relay
