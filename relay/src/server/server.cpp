#include "server.h"

#include <openssl/ssl.h>
#include <unistd.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/ip/v6_only.hpp>
#include <asio/read_until.hpp>
#include <asio/ssl/stream.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <ctime>
#include <unordered_map>

#include "forwarder.h"
#include "header_firewall.h"
#include "kuberelay/policy/credentials.h"
#include "kuberelay/policy/explain.h"
#include "kuberelay/smtp/session.h"
#include "log.h"
#include "proxy_protocol.h"

namespace kuberelay::relay {

using asio::awaitable;
using asio::ip::tcp;
constexpr auto kNoThrow = asio::experimental::as_tuple(asio::use_awaitable);
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::string_view kNoPolicyReply = "421 4.3.2 System not accepting network messages\r\n";
constexpr std::string_view kLimitReply =
    "421 4.3.2 The maximum number of concurrent connections has exceeded a limit, closing "
    "transmission channel\r\n";
constexpr std::string_view kProxyRefusedReply =
    "554 5.7.1 PROXY protocol is not accepted from this address\r\n";
constexpr std::string_view kProxyInvalidReply = "421 4.7.0 Invalid PROXY protocol header\r\n";
constexpr std::string_view kTimeoutReply = "421 4.4.1 Connection timed out\r\n";
constexpr std::string_view kDrainingReply =
    "421 4.3.2 Service shutting down, closing transmission channel\r\n";
constexpr size_t kReadChunk = 16 * 1024;

policy::IpAddress toIp(const asio::ip::address& a) {
  if (a.is_v4()) return policy::IpAddress::v4(a.to_v4().to_uint());
  auto bytes = a.to_v6().to_bytes();
  std::array<uint8_t, 16> b{};
  std::copy(bytes.begin(), bytes.end(), b.begin());
  return policy::IpAddress::v6Bytes(b);
}

std::string rfc5322Date() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S +0000", &tm);
  return buf;
}

std::string machineHostName() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

}  // namespace

// Connections per connector and per (connector, source) for the connection limits, and the
// per-source message rate (messages per minute).
struct Relay::Counters {
  std::unordered_map<std::string, uint32_t> perConnector;
  std::map<std::pair<std::string, policy::IpAddress>, uint32_t> perSource;
  struct Window {
    Clock::time_point start;
    uint32_t count = 0;
  };
  std::map<policy::IpAddress, Window> rate;
  uint32_t total = 0;
};

struct Relay::ListenerState {
  policy::Binding binding;
  bool implicitTls = false;
  tcp::acceptor acceptor;
  ListenerState(asio::io_context& io, policy::Binding b, bool tls)
      : binding(std::move(b)), implicitTls(tls), acceptor(io) {}
};

// One client connection: the socket, TLS, the SMTP session and its forwarder.
class Relay::Connection : public std::enable_shared_from_this<Relay::Connection> {
public:
  Connection(Relay& relay, tcp::socket socket, std::shared_ptr<ListenerState> listener)
      : relay_(relay),
        socket_(std::move(socket)),
        listener_(std::move(listener)),
        watchdog_(socket_.get_executor()),
        tarpit_(socket_.get_executor()) {}

  static awaitable<void> run(std::shared_ptr<Connection> self) { co_await self->serve(); }
  void interrupt() {
    asio::error_code ignored;
    socket_.cancel(ignored);
  }
  // Ends the session now: a best-effort 421, then close. The forwarder is dropped with the
  // connection, so a next hop never commits a half-sent message.
  void abort() {
    asio::error_code ignored;
    if (!tls_) asio::write(socket_, asio::buffer(kDrainingReply), ignored);
    socket_.close(ignored);
  }
  static awaitable<void> watch(std::shared_ptr<Connection> self) { co_await self->watchdog(); }

private:
  awaitable<void> serve() {
    asio::error_code ec;
    auto peer = socket_.remote_endpoint(ec);
    auto local = socket_.local_endpoint(ec);
    if (ec) co_return;
    socket_.set_option(tcp::no_delay(true), ec);
    policy_ = relay_.store_.current();
    // A policy with no connector for this relay's pool serves no one either: 421, try later.
    if (!policy_ || policy_->snapshot->listeners().empty()) {
      relay_.metrics_.connection("none", "no_policy");
      co_await writeRaw(kNoPolicyReply);
      co_return;
    }
    // The policy's port (the socket's differs by --port-offset).
    facts_ = {toIp(local.address()), listener_->binding.port, toIp(peer.address())};
    socketPeer_ = facts_.remoteAddress;
    sessionDeadline_ = Clock::now() + std::chrono::minutes(10);
    setReadDeadline(Clock::now() + std::chrono::seconds(30));
    asio::co_spawn(socket_.get_executor(), watch(shared_from_this()), asio::detached);

    // PROXY protocol: required from trusted load balancers, refused from everyone else.
    std::string early;
    proxyTrusted_ = policy_->trustsProxy(listener_->binding.port, socketPeer_);
    if (proxyTrusted_) {
      if (!co_await readProxyHeader(early)) co_return;
    }

    auto session = policy::SessionPolicy::connect(policy_->snapshot, facts_);
    connector_ = session.connector();
    connectorId_ = connector_ ? connector_->id : "none";
    const bool allowed = session.connectDecision().allowed;
    if (!allowed) {
      relay_.metrics_.connection(connectorId_, session.connectDecision().reason);
    } else if (!admit()) {
      relay_.metrics_.connection(connectorId_, counted_ == 1 ? "limit_total" : "limit_per_source");
      counted_ = 0;
      co_await writeRaw(kLimitReply);
      co_return;
    } else {
      relay_.metrics_.connection(connectorId_, "accepted");
      const auto& l = connector_->spec.limits;
      sessionDeadline_ = Clock::now() + l.connectionTimeout;
      setReadDeadline(sessionDeadline_);
      inactivity_ = l.connectionInactivityTimeout;
      setReadDeadline(Clock::now() + inactivity_);
      forwarder_ =
          makeForwarder(*connector_, {socket_.get_executor(), &relay_.blocking_, &relay_.metrics_,
                                      relay_.options_.hostName, relay_.options_.nextHopTimeout,
                                      policy_->forwardTls[connector_->index], &relay_.nextHops_});
    }
    prometheus::Gauge* active = allowed ? &relay_.metrics_.active(connectorId_) : nullptr;
    if (active) active->Increment();

    // Implicit TLS (RFC 8314): the handshake comes first, and the session starts inside TLS.
    if (allowed && listener_->implicitTls) {
      if (!co_await handshake()) {
        finish(active);
        co_return;
      }
      session.tlsEstablished();
    }
    smtp::SessionConfig config;
    config.hostName = relay_.options_.hostName;
    config.clientAddress = facts_.remoteAddress.toString();
    verbose_ = connector_ && connector_->spec.protocolLogging == policy::ProtocolLogging::Verbose;
    config.protocolLog = verbose_;
    localText_ = local.address().to_string() + ":" + std::to_string(local.port());
    remoteText_ = facts_.remoteAddress.toString() + ":" + std::to_string(peer.port());
    protocol('+', "",
             socketPeer_ == facts_.remoteAddress ? "" : "via PROXY from " + socketPeer_.toString());
    smtp_.emplace(std::move(session), std::move(config));

    smtp::Output out;
    smtp_->start(out);
    bool open = co_await perform(out);
    if (open && !early.empty()) open = co_await feed(early);
    bool first = early.empty();
    std::string buffer(kReadChunk, '\0');
    while (open && !smtp_->closed()) {
      setReadDeadline(std::min(Clock::now() + inactivity_, sessionDeadline_));
      auto [err, n] = co_await readSome(asio::buffer(buffer));
      if (err == asio::error::operation_aborted && relay_.draining_ && !timedOut_ &&
          socket_.is_open()) {
        if (smtp_->inTransaction()) continue;  // let the transaction finish
        co_await writeTls(kDrainingReply);
        break;
      }
      if (err || n == 0) {
        if (timedOut_) co_await writeTls(kTimeoutReply);
        break;
      }
      if (relay_.draining_ && !smtp_->inTransaction()) {
        co_await writeTls(kDrainingReply);  // a new command while draining
        break;
      }
      std::string_view bytes(buffer.data(), n);
      if (first && !proxyTrusted_ && startsLikeProxyHeader(bytes)) {
        relay_.metrics_.connection(connectorId_, "proxy_refused");
        co_await writeTls(kProxyRefusedReply);
        break;
      }
      first = false;
      open = co_await feed(bytes);
    }
    finish(active);
  }

  void protocol(char event, std::string_view data, std::string_view context = {}) {
    if (verbose_) {
      relay_.protocolLog_->write(connectorId_, sessionId_, sequence_++, localText_, remoteText_,
                                 event, data, context);
    }
  }

  void finish(prometheus::Gauge* active) {
    protocol('-', "");
    if (active) active->Decrement();
    release();
    asio::error_code ignored;
    socket_.close(ignored);
    watchdog_.cancel();
  }

  awaitable<bool> feed(std::string_view bytes) {
    smtp::Output out;
    smtp_->receive(bytes, out);
    co_return co_await perform(out);
  }

  awaitable<bool> readProxyHeader(std::string& rest) {
    std::string buf;
    for (;;) {
      char tmp[1024];
      auto [err, n] = co_await readSome(asio::buffer(tmp));
      if (err || n == 0) co_return false;
      buf.append(tmp, n);
      ProxyParse p = parseProxyHeader(buf);
      if (p.status == ProxyStatus::NeedMore && buf.size() < 16 + kProxyV2MaxAddressLength) continue;
      if (p.status != ProxyStatus::Complete) {
        log("warn", "invalid PROXY header", {{"peer", socketPeer_.toString()}, {"error", p.error}});
        relay_.metrics_.connection("none", "proxy_invalid");
        co_await writeRaw(kProxyInvalidReply);
        co_return false;
      }
      if (!p.header.useSocketAddresses) facts_.remoteAddress = p.header.source;
      rest = buf.substr(p.consumed);
      co_return true;
    }
  }

  // Exchange's limits: MaxInboundConnection and MaxInboundConnectionPerSource, per connector.
  bool admit() {
    auto& c = *relay_.counters_;
    const auto& l = connector_->spec.limits;
    uint32_t& perConnector = c.perConnector[connectorId_];
    uint32_t& perSource = c.perSource[{connectorId_, facts_.remoteAddress}];
    if (perConnector >= l.maxInboundConnection) {
      counted_ = 1;
      return false;
    }
    if (perSource >= l.maxInboundConnectionPerSource) {
      counted_ = 2;
      return false;
    }
    ++perConnector;
    ++perSource;
    ++c.total;
    counted_ = 3;
    return true;
  }

  void release() {
    if (counted_ != 3) return;
    auto& c = *relay_.counters_;
    if (--c.perConnector[connectorId_] == 0) c.perConnector.erase(connectorId_);
    auto key = std::make_pair(connectorId_, facts_.remoteAddress);
    if (--c.perSource[key] == 0) c.perSource.erase(key);
    --c.total;
    counted_ = 0;
  }

  bool rateLimited() {
    uint32_t limit = connector_->spec.limits.messageRateLimit;
    if (limit == 0) return false;
    auto& w = relay_.counters_->rate[facts_.remoteAddress];
    auto now = Clock::now();
    if (now - w.start >= std::chrono::minutes(1)) {
      w.start = now;
      w.count = 0;
    }
    if (w.count >= limit) return true;
    ++w.count;
    return false;
  }

  // Carries out the session's actions, in order. Returns false once the connection is closed.
  awaitable<bool> perform(smtp::Output& out) {
    std::string pending;
    auto flush = [&]() -> awaitable<bool> {
      if (pending.empty()) co_return true;
      bool ok = co_await writeTls(pending);
      pending.clear();
      co_return ok;
    };
    const auto& actions = out.actions();
    for (size_t i = 0; i < actions.size(); ++i) {
      const smtp::Action& a = actions[i];
      if (auto* r = std::get_if<smtp::action::Reply>(&a)) {
        pending += out.text(*r);
        relay_.metrics_.reply(connectorId_, r->code);
        if (verbose_) {
          std::string_view text = out.text(*r);
          for (size_t pos = 0; pos < text.size();) {
            size_t end = text.find("\r\n", pos);
            if (end == std::string_view::npos) end = text.size();
            protocol('>', text.substr(pos, end - pos));
            pos = end + 2;
          }
        }
      } else if (auto* line = std::get_if<smtp::action::ClientLine>(&a)) {
        protocol('<', line->text);
      } else if (auto* t = std::get_if<smtp::action::Tarpit>(&a)) {
        if (!co_await flush()) co_return false;
        tarpit_.expires_after(t->delay);
        co_await tarpit_.async_wait(kNoThrow);
      } else if (std::holds_alternative<smtp::action::Close>(a)) {
        co_await flush();
        co_return false;
      } else if (std::holds_alternative<smtp::action::StartTls>(a)) {
        if (!co_await flush()) co_return false;
        if (!co_await handshake()) co_return false;
        smtp::Output next;
        smtp_->onTlsEstablished(next);
        co_return co_await perform(next);
      } else if (auto* v = std::get_if<smtp::action::VerifyCredentials>(&a)) {
        if (!co_await flush()) co_return false;
        const policy::UserEntry* user = co_await asio::co_spawn(
            relay_.blocking_,
            verify(policy_, connector_->index, std::string(v->user), std::string(v->password)),
            asio::use_awaitable);
        smtp::Output next;
        smtp_->onCredentials(user, next);
        co_return co_await perform(next);
      } else if (auto* b = std::get_if<smtp::action::BeginTransaction>(&a)) {
        if (!co_await flush()) co_return false;
        NextHopReply reply;
        if (rateLimited()) {
          reply = {451, "4.7.0",
                   "Message submission rate for this client has exceeded the configured limit"};
        } else {
          reply = co_await forwarder_->begin(std::string(b->sender), b->params);
        }
        sender_ = b->sender;
        recipients_.clear();
        co_return co_await answer(reply);
      } else if (auto* rc = std::get_if<smtp::action::AddRecipient>(&a)) {
        if (!co_await flush()) co_return false;
        NextHopReply reply = co_await forwarder_->addRecipient(std::string(rc->recipient));
        if (reply.code < 400) recipients_.emplace_back(rc->recipient);
        co_return co_await answer(reply);
      } else if (std::holds_alternative<smtp::action::BeginData>(a)) {
        if (!co_await flush()) co_return false;
        firewall_.emplace(smtp_->policy().rights());
        if (firewall_->passThrough()) firewall_.reset();
        contentStarted_ = false;
        NextHopReply reply = co_await forwarder_->beginData(receivedHeader());
        co_return co_await answer(reply);
      } else if (auto* c = std::get_if<smtp::action::BodyChunk>(&a)) {
        if (!contentStarted_ && !c->bytes.empty()) {
          contentStarted_ = true;
          if (c->bytes.front() == ' ' || c->bytes.front() == '\t') {
            // A first line that starts with white space would fold into our Received field
            // (forged trace text). It is no header: start the body there, as Postfix does.
            co_await forwarder_->chunk("\r\n");
            firewall_.reset();
          }
        }
        if (firewall_) {
          headers_.clear();
          std::string_view rest = firewall_->feed(c->bytes, headers_);
          if (!headers_.empty()) co_await forwarder_->chunk(headers_);
          if (!rest.empty()) co_await forwarder_->chunk(rest);
        } else {
          co_await forwarder_->chunk(c->bytes);
        }
      } else if (auto* e = std::get_if<smtp::action::EndOfData>(&a)) {
        if (!co_await flush()) co_return false;
        if (firewall_) {
          headers_.clear();
          firewall_->finish(headers_);
          if (!headers_.empty()) co_await forwarder_->chunk(headers_);
          firewall_.reset();
        }
        NextHopReply reply = co_await forwarder_->endOfData(e->size);
        relay_.metrics_.message(connectorId_,
                                reply.code < 400   ? "accepted"
                                : reply.code < 500 ? "deferred"
                                                   : "rejected",
                                e->size);
        co_return co_await answer(reply);
      } else if (std::holds_alternative<smtp::action::ResetTransaction>(a)) {
        firewall_.reset();
        if (forwarder_) co_await forwarder_->reset();
      } else if (auto* ev = std::get_if<smtp::action::Event>(&a)) {
        record(*ev);
      }
    }
    co_return co_await flush();
  }

  awaitable<bool> answer(const NextHopReply& reply) {
    smtp::Output next;
    smtp_->onForwardReply(reply.view(), next);
    co_return co_await perform(next);
  }

  static awaitable<const policy::UserEntry*> verify(LoadedPolicyPtr policy, uint32_t connector,
                                                    std::string user, std::string password) {
    const auto& c = policy->snapshot->connectors()[connector];
    const policy::UserEntry* entry = policy::verifyCredentials(c, user, password);
    std::fill(password.begin(), password.end(), '\0');
    co_return entry;
  }

  void record(const smtp::action::Event& ev) {
    const policy::Decision& d = ev.decision;
    // The next hop's verdicts are counted by the forwarding metrics; these count the policy's.
    const bool nextHop = d.reason.rfind("next_hop", 0) == 0;
    switch (nextHop ? smtp::EventStage::Protocol : ev.stage) {
      case smtp::EventStage::Auth:
        relay_.metrics_.auth(connectorId_, smtp_->authMechanism(),
                             d.allowed ? "success" : std::string(d.reason));
        break;
      case smtp::EventStage::Mail:
        relay_.metrics_.senderDecision(connectorId_, d.allowed, d.reason);
        break;
      case smtp::EventStage::Rcpt:
        relay_.metrics_.relayDecision(connectorId_, d.allowed, d.reason);
        break;
      case smtp::EventStage::Data:
        // Refused by the policy at the end of the data (size): a message all the same. The next
        // hop's verdicts are counted where the forwarder answers.
        if (!d.allowed && ev.fromPolicy && !ev.input.empty()) {
          relay_.metrics_.message(connectorId_, d.reply.code < 500 ? "deferred" : "rejected",
                                  std::stoull(ev.input));
        }
        break;
      default:
        break;
    }
    if (d.audited) {
      relay_.metrics_.auditWouldRefuse(connectorId_, smtp::toString(ev.stage), d.wouldRefuseReason);
      logDecision("audit: would refuse", ev.stage, d.wouldRefuse.toString(), d.wouldRefuseReason);
      return;
    }
    if (d.allowed && ev.stage != smtp::EventStage::Connect) return;
    std::string reply = d.reply.toString();
    if (!d.allowed && ev.fromPolicy && !nextHop) keepRefusal(ev, reply);
    logDecision("decision", ev.stage, reply, d.reason);
  }

  void logDecision(const char* msg, smtp::EventStage stage, const std::string& reply,
                   std::string_view reason) {
    log("info", msg,
        {{"session", sessionId_},
         {"connector", connectorId_},
         {"client", facts_.remoteAddress.toString()},
         {"stage", smtp::toString(stage)},
         {"reply", reply},
         {"reason", reason},
         {"principal", smtp_->policy().principalDescription()}});
  }

  // What the policy saw, for /refusals: replayed through explainSession when it is read.
  void keepRefusal(const smtp::action::Event& ev, const std::string& reply) {
    Refusal r;
    r.time = std::chrono::system_clock::now();
    r.session = sessionId_;
    r.connector = connectorId_;
    r.stage = smtp::toString(ev.stage);
    r.reply = reply;
    r.reason = ev.decision.reason;
    r.principal = smtp_->policy().principalDescription();
    r.snapshot = policy_->snapshot;
    policy::ExplainRequest& q = r.request;
    q.from = facts_.remoteAddress;
    q.toAddress = facts_.localAddress;
    q.toPort = facts_.localPort;
    q.tls = tls_ != nullptr;
    if (const policy::UserEntry* u = smtp_->policy().user()) q.user = u->name;
    switch (ev.stage) {
      case smtp::EventStage::Mail:
        q.mail = ev.input;
        break;
      case smtp::EventStage::Rcpt:
        q.mail = sender_;
        q.rcpts = {ev.input};
        break;
      case smtp::EventStage::Data:
        q.mail = sender_;
        q.rcpts = recipients_;
        if (!ev.input.empty()) q.dataBytes = std::stoull(ev.input);
        break;
      default:
        break;
    }
    relay_.refusals_.add(std::move(r));
  }

  std::string receivedHeader() const {
    std::string with = tls_ ? "ESMTPS" : "ESMTP";
    if (smtp_->policy().isAuthenticated()) with += "A";
    std::string h = "Received: from " +
                    std::string(smtp_->heloName().empty() ? "unknown" : smtp_->heloName()) + " ([" +
                    facts_.remoteAddress.toString() + "]) by " + relay_.options_.hostName +
                    " (KubeRelay, connector " + connectorId_ + ")";
    h += "\r\n\tid " + sessionId_;
    if (tls_) {
      SSL* ssl = tls_->native_handle();
      h += std::string("\r\n\t(version=") + SSL_get_version(ssl) +
           " cipher=" + SSL_get_cipher_name(ssl) + ")";
    }
    h += "\r\n\twith " + with + "; " + rfc5322Date() + "\r\n";
    return h;
  }

  awaitable<bool> handshake() {
    auto ctx = connector_ ? policy_->tls[connector_->index] : nullptr;
    if (!ctx) co_return false;
    tls_ = std::make_unique<asio::ssl::stream<tcp::socket&>>(socket_, *ctx);
    // A silent handshake is an idle connection: the connector's inactivity timeout applies.
    const Clock::duration limit = std::min<Clock::duration>(inactivity_, std::chrono::seconds(30));
    setReadDeadline(std::min(Clock::now() + limit, sessionDeadline_));
    auto [err] = co_await tls_->async_handshake(asio::ssl::stream_base::server, kNoThrow);
    if (!err) {
      SSL* ssl = tls_->native_handle();
      protocol('*', "TLS negotiated",
               std::string(SSL_get_version(ssl)) + " " + SSL_get_cipher_name(ssl));
    }
    if (err) {
      protocol('*', "TLS negotiation failed", err.message());
      log("info", "TLS handshake failed",
          {{"session", sessionId_},
           {"connector", connectorId_},
           {"client", facts_.remoteAddress.toString()},
           {"error", err.message()}});
      co_return false;
    }
    co_return true;
  }

  awaitable<std::tuple<asio::error_code, size_t>> readSome(asio::mutable_buffer buf) {
    if (tls_) co_return co_await tls_->async_read_some(buf, kNoThrow);
    co_return co_await socket_.async_read_some(buf, kNoThrow);
  }

  awaitable<bool> writeTls(std::string_view data) {
    asio::error_code err;
    setReadDeadline(std::min(Clock::now() + std::chrono::seconds(60), sessionDeadline_));
    if (tls_) {
      std::tie(err, std::ignore) = co_await asio::async_write(*tls_, asio::buffer(data), kNoThrow);
    } else {
      std::tie(err, std::ignore) =
          co_await asio::async_write(socket_, asio::buffer(data), kNoThrow);
    }
    co_return !err;
  }

  awaitable<void> writeRaw(std::string_view data) {
    co_await asio::async_write(socket_, asio::buffer(data), kNoThrow);
    asio::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    socket_.close(ignored);
    watchdog_.cancel();
  }

  // Moving a deadline earlier wakes the watchdog so it re-arms for the new one.
  void setReadDeadline(Clock::time_point t) {
    readDeadline_ = t;
    if (std::min(readDeadline_, sessionDeadline_) < armed_) watchdog_.cancel();
  }

  // Closes the socket when the inactivity or session deadline passes (cancelling any read).
  awaitable<void> watchdog() {
    while (socket_.is_open()) {
      auto deadline = std::min(readDeadline_, sessionDeadline_);
      if (Clock::now() >= deadline) {
        timedOut_ = true;
        asio::error_code ignored;
        socket_.cancel(ignored);
        // Give the reader a moment to send 421, then close for good.
        watchdog_.expires_after(std::chrono::seconds(5));
        co_await watchdog_.async_wait(kNoThrow);
        socket_.close(ignored);
        co_return;
      }
      armed_ = deadline;
      watchdog_.expires_at(deadline);
      co_await watchdog_.async_wait(kNoThrow);
    }
  }

  Relay& relay_;
  tcp::socket socket_;
  std::shared_ptr<ListenerState> listener_;
  asio::steady_timer watchdog_;
  asio::steady_timer tarpit_;
  std::unique_ptr<asio::ssl::stream<tcp::socket&>> tls_;
  LoadedPolicyPtr policy_;
  policy::ConnectionFacts facts_;
  policy::IpAddress socketPeer_;
  const policy::CompiledConnector* connector_ = nullptr;
  std::string connectorId_ = "none";
  std::optional<smtp::Session> smtp_;
  std::unique_ptr<Forwarder> forwarder_;
  std::optional<HeaderFirewall> firewall_;  // during DATA, unless every header right is held
  std::string headers_;                     // header fields that passed the firewall
  bool contentStarted_ = false;             // the first octet of this message's content seen
  std::string sender_;                      // of the current transaction, for /refusals
  std::vector<std::string> recipients_;     // accepted so far in it
  Clock::time_point sessionDeadline_;
  Clock::time_point readDeadline_;
  Clock::time_point armed_ = Clock::time_point::max();  // what the watchdog waits for
  std::chrono::milliseconds inactivity_{std::chrono::minutes(5)};
  int counted_ = 0;  // 3 once counted toward the limits
  std::string sessionId_ = newSessionId();
  uint32_t sequence_ = 0;
  bool verbose_ = false;  // the connector's protocolLogging is Verbose
  std::string localText_;
  std::string remoteText_;
  bool timedOut_ = false;
  bool proxyTrusted_ = false;  // the socket peer is a trusted load balancer for this port
};

Relay::Relay(asio::io_context& io, RelayOptions options)
    : io_(io),
      options_(std::move(options)),
      nextHops_(io.get_executor(), options_.nextHopPool),
      protocolLog_(std::make_unique<ProtocolLog>(options_.protocolLogDir)),
      counters_(std::make_unique<Counters>()),
      reloadTimer_(io) {
  if (options_.hostName.empty()) options_.hostName = machineHostName();
  if (!options_.manifests.empty()) manifests_.emplace(options_.manifests, options_.relayPool);
  if (options_.controlPlane) options_.controlPlane->pool = options_.relayPool;
}

Relay::~Relay() {
  controlPlane_.reset();  // its thread stages snapshots with this object: join it first
  blocking_.join();
}

void Relay::start() {
  // Admin endpoint first: /readyz answers 503 until a policy is in force.
  std::string host = options_.adminAddress.substr(0, options_.adminAddress.rfind(':'));
  auto port = static_cast<uint16_t>(
      std::stoi(options_.adminAddress.substr(options_.adminAddress.rfind(':') + 1)));
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  tcp::endpoint ep(asio::ip::make_address(host), port);
  admin_ = std::make_unique<tcp::acceptor>(io_, ep);
  adminPort_ = admin_->local_endpoint().port();
  log("info", "admin listening", {{"address", host + ":" + std::to_string(adminPort_)}});
  asio::co_spawn(io_, adminLoop(), asio::detached);
  reload();
  asio::co_spawn(io_, reloadLoop(), asio::detached);
  if (!store_.current()) {
    // Until a policy says where to listen: answer 421 4.3.2 on these ports rather than refuse
    // connections (the first policy's bindings replace them).
    for (uint16_t port : options_.standbyPorts) {
      policy::Binding binding{std::nullopt, port, false};
      openListener(binding.toString(), binding, false, true);
    }
  }
  if (options_.controlPlane) {
    // No policy until the first snapshot: 421 4.3.2 and /readyz 503, never a default.
    log("info", "cluster mode: waiting for the first policy snapshot",
        {{"control_plane", options_.controlPlane->target},
         {"pod", options_.controlPlane->podName},
         {"pool", options_.relayPool},
         {"tls", options_.controlPlane->insecure ? "none (insecure)" : "mutual"}});
    metrics_.enableControlPlane();
    controlPlane_ = std::make_unique<ControlPlaneClient>(
        io_, *options_.controlPlane,
        [this](const ReceivedSnapshot& received) { return stage(received); }, metrics_);
    auto current = store_.current();
    controlPlane_->start(current ? current->snapshot->version() : "");
  }
}

void Relay::reload() {
  if (!manifests_) return;
  auto load = manifests_->reloadIfChanged();
  if (!load) return;
  const std::string dir = manifests_->path().string();
  for (const auto& d : load->result.diagnostics) {
    log(d.isError() ? "error" : "warn", d.isError() ? "policy error" : "policy warning",
        {{"object", d.object.kind + " " + d.object.ns + "/" + d.object.name},
         {"source", d.object.source},
         {"field", d.field},
         {"reason", d.reason},
         {"detail", d.message}});
  }
  if (!load->error.empty()) {
    metrics_.policyLoaded("", false);
    log("error", "policy reload rejected; the last good policy stays in force",
        {{"dir", dir}, {"error", load->error}});
    return;
  }
  PrepareResult prepared = prepare(load->result.snapshot);
  if (!prepared.policy) {
    metrics_.policyLoaded("", false);
    log("error", "policy reload rejected; the last good policy stays in force",
        {{"dir", dir}, {"error", prepared.error}});
    return;
  }
  applyPolicy(prepared.policy);
}

StagedSnapshot Relay::stage(const ReceivedSnapshot& received) {
  ReceivedLoad load = prepareReceived(received, options_.relayPool);
  if (!load.policy) {
    metrics_.policyLoaded("", false);
    return {load.error, nullptr, ""};
  }
  std::string summary = "connectors=" + std::to_string(load.policy->snapshot->connectors().size()) +
                        " errors=" + std::to_string(load.errors) +
                        " warnings=" + std::to_string(load.warnings);
  return {"", [this, policy = std::move(load.policy)] { applyPolicy(policy); }, std::move(summary)};
}

void Relay::applyPolicy(LoadedPolicyPtr policy) {
  auto previous = store_.current();
  if (previous && previous->snapshot->version() == policy->snapshot->version()) return;
  store_.set(policy);
  metrics_.policyLoaded(policy->snapshot->version(), true);
  log("info", "policy applied",
      {{"version", policy->snapshot->version()},
       {"connectors", std::to_string(policy->snapshot->connectors().size())}});
  if (!draining_) syncListeners(*policy->snapshot);
}

void Relay::syncListeners(const policy::Snapshot& snapshot) {
  // A wildcard binding serves every local address of its port: specific bindings on the same
  // port need no socket of their own (the session still sees the local address it came in on).
  std::map<std::string, const policy::Listener*> wanted;
  for (const auto& l : snapshot.listeners()) {
    if (l.binding.address) {
      bool covered = false;
      for (const auto& other : snapshot.listeners()) {
        covered = covered || (!other.binding.address && other.binding.port == l.binding.port &&
                              other.binding.anyV6 == !l.binding.address->isV4());
      }
      if (covered) continue;
    }
    wanted[l.binding.toString()] = &l;
  }
  // Nothing to serve (no connector for this pool yet): keep answering 421 4.3.2 on the
  // standby ports rather than refuse connections.
  std::map<std::string, policy::Binding> standby;
  if (wanted.empty()) {
    for (uint16_t port : options_.standbyPorts) {
      policy::Binding binding{std::nullopt, port, false};
      standby.emplace(binding.toString(), binding);
    }
  }
  for (auto it = listeners_.begin(); it != listeners_.end();) {
    auto w = wanted.find(it->first);
    if (standby.count(it->first) && !it->second->implicitTls) {
      ++it;
    } else if (w == wanted.end() || w->second->implicitTls != it->second->implicitTls) {
      asio::error_code ignored;
      it->second->acceptor.close(ignored);
      log("info", "listener closed", {{"binding", it->first}});
      it = listeners_.erase(it);
    } else {
      ++it;
    }
  }
  listenFailures_ = 0;
  for (const auto& [text, l] : wanted) {
    if (listeners_.count(text)) continue;
    if (!openListener(text, l->binding, l->implicitTls, false)) ++listenFailures_;
  }
  for (const auto& [text, binding] : standby) {
    if (!listeners_.count(text)) openListener(text, binding, false, true);
  }
}

bool Relay::openListener(const std::string& text, const policy::Binding& binding, bool implicitTls,
                         bool standby) {
  auto state = std::make_shared<ListenerState>(io_, binding, implicitTls);
  asio::ip::address address;
  if (binding.address) {
    address = asio::ip::make_address(binding.address->toString());
  } else if (binding.anyV6) {
    address = asio::ip::address_v6::any();
  } else {
    address = asio::ip::address_v4::any();
  }
  const uint32_t port = uint32_t{binding.port} + options_.portOffset;
  asio::error_code ec;
  if (port > 65535) ec = asio::error::invalid_argument;
  tcp::endpoint ep(address, static_cast<uint16_t>(port));
  if (!ec) state->acceptor.open(ep.protocol(), ec);
  if (!ec) state->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec && ep.address().is_v6()) state->acceptor.set_option(asio::ip::v6_only(true), ec);
  if (!ec) state->acceptor.bind(ep, ec);
  if (!ec) state->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  // With --port-offset the socket's port is not the policy's: say both.
  const std::string where = options_.portOffset ? text + " on port " + std::to_string(port) : text;
  if (ec) {
    log("error", "cannot listen", {{"binding", where}, {"error", ec.message()}});
    return false;
  }
  if (standby) {
    log("info", "listening on standby: 421 4.3.2 until a policy is in force", {{"binding", where}});
  } else {
    log("info", "listening", {{"binding", where}, {"tls", implicitTls ? "implicit" : "starttls"}});
  }
  listeners_[text] = state;
  asio::co_spawn(io_, acceptLoop(state), asio::detached);
  return true;
}

awaitable<void> Relay::acceptLoop(std::shared_ptr<ListenerState> listener) {
  while (listener->acceptor.is_open()) {
    auto [err, socket] = co_await listener->acceptor.async_accept(kNoThrow);
    if (err) {
      if (err == asio::error::operation_aborted || !listener->acceptor.is_open()) co_return;
      // EMFILE and friends: back off briefly rather than spin.
      asio::steady_timer t(io_, std::chrono::milliseconds(50));
      co_await t.async_wait(kNoThrow);
      continue;
    }
    auto conn = std::make_shared<Connection>(*this, std::move(socket), listener);
    std::erase_if(live_, [](const auto& w) { return w.expired(); });
    live_.push_back(conn);
    asio::co_spawn(io_, Connection::run(conn), [](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        log("error", "session failed", {{"error", ex.what()}});
      }
    });
  }
}

awaitable<void> Relay::reloadLoop() {
  while (!draining_) {  // both modes: a listener that could not open is retried here
    reloadTimer_.expires_after(options_.reloadInterval);
    auto [err] = co_await reloadTimer_.async_wait(kNoThrow);
    if (err || draining_) co_return;
    reload();
    if (listenFailures_ > 0) {
      if (auto p = store_.current()) syncListeners(*p->snapshot);  // the port may be free now
    }
  }
}

awaitable<void> Relay::adminLoop() {
  while (admin_ && admin_->is_open()) {
    auto [err, socket] = co_await admin_->async_accept(kNoThrow);
    if (err) co_return;
    // Each request on its own, with a deadline: a slow or idle client never blocks the probes.
    auto conn = std::make_shared<tcp::socket>(std::move(socket));
    asio::co_spawn(io_, adminRequest(conn), asio::detached);
  }
}

awaitable<void> Relay::adminRequest(std::shared_ptr<tcp::socket> socket) {
  asio::steady_timer deadline(io_, std::chrono::seconds(5));
  deadline.async_wait([weak = std::weak_ptr<tcp::socket>(socket)](const asio::error_code& ec) {
    if (ec) return;
    if (auto s = weak.lock()) {
      asio::error_code ignored;
      s->close(ignored);
    }
  });
  std::string request;
  auto [rerr, n] = co_await asio::async_read_until(*socket, asio::dynamic_buffer(request, 8192),
                                                   "\r\n\r\n", kNoThrow);
  if (rerr) co_return;
  std::string path = request.substr(0, request.find("\r\n"));
  size_t sp1 = path.find(' '), sp2 = path.rfind(' ');
  path = (sp1 != std::string::npos && sp2 > sp1) ? path.substr(sp1 + 1, sp2 - sp1 - 1) : "/";
  std::string status = "200 OK", body, type = "text/plain; charset=utf-8";
  if (path == "/metrics") {
    body = metrics_.render();
    type = "text/plain; version=0.0.4; charset=utf-8";
  } else if (path == "/explain" || path.rfind("/explain?", 0) == 0) {
    auto result = explainFromQuery(path.size() > 9 ? path.substr(9) : "");
    if (result) {
      body = *result;
      type = "application/json";
    } else {
      status = "400 Bad Request";
      body =
          "usage: /explain?from=IP&port=N[&to=IP][&tls=1][&user=U][&mail=A][&size=N]"
          "[&rcpt=A]...[&data=N]\n";
    }
  } else if (path == "/refusals" || path.rfind("/refusals?limit=", 0) == 0) {
    size_t limit = 100;
    if (path.size() > 16) limit = std::strtoul(path.c_str() + 16, nullptr, 10);
    body = refusals_.toJson(limit);
    type = "application/json";
  } else if (path == "/healthz") {
    body = "ok\n";
  } else if (path == "/readyz") {
    auto p = store_.current();
    if (ready()) {
      body = "ready " + p->snapshot->version() + "\n";
    } else {
      status = "503 Service Unavailable";
      body = draining_ ? "draining\n"
             : !p      ? "no policy loaded\n"
             : p->snapshot->listeners().empty()
                 ? "the policy has no connector for this relay pool\n"
                 : "a listener is not open\n";
    }
  } else {
    status = "404 Not Found";
    body = "not found\n";
  }
  std::string response = "HTTP/1.1 " + status + "\r\nContent-Type: " + type +
                         "\r\nContent-Length: " + std::to_string(body.size()) +
                         "\r\nConnection: close\r\n\r\n" + body;
  co_await asio::async_write(*socket, asio::buffer(response), kNoThrow);
  asio::error_code ignored;
  socket->shutdown(tcp::socket::shutdown_both, ignored);
  deadline.cancel();
}

namespace {

std::string urlDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      auto hex = [](char c) {
        return c >= '0' && c <= '9'                 ? c - '0'
               : (c | 32) >= 'a' && (c | 32) <= 'f' ? (c | 32) - 'a' + 10
                                                    : -1;
      };
      int hi = i + 1 < s.size() ? hex(s[i + 1]) : -1, lo = i + 2 < s.size() ? hex(s[i + 2]) : -1;
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += s[i] == '+' ? ' ' : s[i];
  }
  return out;
}

}  // namespace

// The question "what would happen to this session" against the policy in force right now.
// Passwords are never accepted here: `user` means "once this user has authenticated".
std::optional<std::string> Relay::explainFromQuery(std::string_view query) const {
  auto p = store_.current();
  if (!p) return std::nullopt;
  policy::ExplainRequest req;
  req.toAddress = policy::IpAddress::v4(0);
  bool haveFrom = false, havePort = false;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    size_t eq = pair.find('=');
    std::string key(pair.substr(0, eq));
    std::string value = eq == std::string_view::npos ? "" : urlDecode(pair.substr(eq + 1));
    try {
      if (key == "from") {
        auto a = policy::IpAddress::parse(value);
        if (!a) return std::nullopt;
        req.from = *a;
        haveFrom = true;
      } else if (key == "to") {
        auto a = policy::IpAddress::parse(value);
        if (!a) return std::nullopt;
        req.toAddress = *a;
      } else if (key == "port") {
        int port = std::stoi(value);
        if (port < 1 || port > 65535) return std::nullopt;
        req.toPort = static_cast<uint16_t>(port);
        havePort = true;
      } else if (key == "tls") {
        req.tls = value == "1" || value == "true";
      } else if (key == "user") {
        req.user = value;
      } else if (key == "mail") {
        req.mail = value;
      } else if (key == "rcpt") {
        req.rcpts.push_back(value);
      } else if (key == "size") {
        req.size = std::stoull(value);
      } else if (key == "data") {
        req.dataBytes = std::stoull(value);
      } else {
        return std::nullopt;
      }
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }
  if (!haveFrom || !havePort) return std::nullopt;
  return policy::explainSession(p->snapshot, req).toJson();
}

void Relay::drain() {
  if (draining_.exchange(true)) {
    io_.stop();  // a second signal: stop now
    return;
  }
  log("info", "draining", {{"timeout", std::to_string(options_.drainTimeout.count()) + "ms"}});
  for (auto& [text, l] : listeners_) {
    asio::error_code ignored;
    l->acceptor.close(ignored);
  }
  listeners_.clear();
  reloadTimer_.cancel();
  if (controlPlane_) controlPlane_->requestStop();  // joined in ~Relay
  // Wake every session blocked in a read: idle ones say 421 and close, busy ones go on.
  for (const auto& w : live_) {
    if (auto c = w.lock()) c->interrupt();
  }
  asio::co_spawn(io_, drainLoop(), asio::detached);
}

awaitable<void> Relay::drainLoop() {
  auto deadline = Clock::now() + options_.drainTimeout;
  asio::steady_timer t(io_);
  while (counters_->total > 0 && Clock::now() < deadline) {
    t.expires_after(std::chrono::milliseconds(100));
    co_await t.async_wait(kNoThrow);
  }
  log("info", "drained", {{"open_sessions", std::to_string(counters_->total)}});
  for (const auto& w : live_) {
    if (auto c = w.lock()) c->abort();  // past the deadline: 421 and close, nothing delivered
  }
  // Pooled next-hop sessions get their QUIT (bounded: each gives up after two seconds).
  nextHops_.closeAll();
  for (int i = 0; i < 25 && nextHops_.retiring() > 0; ++i) {
    t.expires_after(std::chrono::milliseconds(100));
    co_await t.async_wait(kNoThrow);
  }
  if (admin_) {
    asio::error_code ignored;
    admin_->close(ignored);
  }
  io_.stop();
}

}  // namespace kuberelay::relay
