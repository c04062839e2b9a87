// NAME
//   transcript.cpp - the test harness that plays the relay's I/O layer around a Session
#include "transcript.h"

#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <random>
#include <stdexcept>

#include "kuberelay/policy/compiler.h"
#include "kuberelay/policy/credentials.h"
#include "kuberelay/policy/manifest.h"

namespace kuberelay::smtp::testing {
namespace {

std::string escape(std::string_view bytes) {
  std::string out;
  for (char c : bytes) {
    switch (c) {
      case '\r':
        out += "\\r";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\0':
        out += "\\0";
        break;
      case '\\':
        out += "\\\\";
        break;
      default:
        out += c;
    }
  }
  return out;
}

class Runner {
public:
  Runner(const Harness& h, Session& session) : h_(h), session_(session) {}

  // Feeds `bytes` in pieces; returns false once the session closed.
  bool feed(std::string_view bytes, Split split, std::mt19937& random) {
    size_t pos = 0;
    while (pos < bytes.size()) {
      if (session_.closed()) return false;
      if (tlsPending_) return true;  // the rest of this read is discarded (CVE-2011-0411)
      size_t n = bytes.size() - pos;
      if (split == Split::Bytes) {
        n = 1;
      } else if (split == Split::Random) {
        n = std::min<size_t>(n, std::uniform_int_distribution<size_t>(1, 40)(random));
      }
      Output out;
      session_.receive(bytes.substr(pos, n), out);
      pos += n;
      drain(out);
    }
    return !session_.closed();
  }

  void tls() {
    if (!tlsPending_) {
      lines_.push_back("(client expected TLS, none was started)");
      return;
    }
    tlsPending_ = false;
    Output out;
    session_.onTlsEstablished(out);
    drain(out);
  }

  void start() {
    Output out;
    session_.start(out);
    drain(out);
  }

  std::string finish() {
    std::string text;
    for (const auto& l : lines_) text += l + "\n";
    return text;
  }

private:
  // Acts on every action, answering the ones the session waits for, until it waits no more.
  void drain(Output& out) {
    for (;;) {
      std::optional<policy::Reply> forward;
      std::optional<std::pair<std::string, std::string>> credentials;
      for (const Action& a : out.actions()) {
        act(a, out, forward, credentials);
      }
      out.clear();
      if (credentials) {
        const policy::UserEntry* entry =
            session_.policy().connector()
                ? policy::verifyCredentials(*session_.policy().connector(), credentials->first,
                                            credentials->second)
                : nullptr;
        session_.onCredentials(entry, out);
      } else if (forward) {
        session_.onForwardReply(*forward, out);
      } else {
        return;
      }
    }
  }

  void act(const Action& a, const Output& out, std::optional<policy::Reply>& forward,
           std::optional<std::pair<std::string, std::string>>& credentials) {
    const RenderOptions& r = h_.render;
    const bool inLine = h_.config.forwardMode == ForwardMode::InLine;
    if (auto* reply = std::get_if<action::Reply>(&a)) {
      std::string_view text = out.text(*reply);
      while (!text.empty()) {
        size_t end = text.find("\r\n");
        if (end == std::string_view::npos) {
          lines_.push_back("S: (unterminated) " + escape(text));
          break;
        }
        lines_.push_back("S: " + std::string(text.substr(0, end)));
        text.remove_prefix(end + 2);
      }
    } else if (std::holds_alternative<action::StartTls>(a)) {
      lines_.push_back("X: STARTTLS");
      tlsPending_ = true;
    } else if (std::holds_alternative<action::Close>(a)) {
      lines_.push_back("X: CLOSE");
    } else if (auto* t = std::get_if<action::Tarpit>(&a)) {
      if (r.tarpits) lines_.push_back("T: " + std::to_string(t->delay.count()) + "ms");
    } else if (auto* v = std::get_if<action::VerifyCredentials>(&a)) {
      lines_.push_back("A: VERIFY " + escape(v->user));
      credentials.emplace(std::string(v->user), std::string(v->password));
    } else if (auto* m = std::get_if<action::BeginTransaction>(&a)) {
      if (r.forwarding) {
        std::string line = "F: MAIL <" + std::string(m->sender) + ">";
        if (m->params.size) line += " SIZE=" + std::to_string(*m->params.size);
        if (m->params.body != BodyType::Unspecified)
          line += std::string(" BODY=") + toString(m->params.body);
        if (m->params.smtpUtf8) line += " SMTPUTF8";
        lines_.push_back(line);
      }
      body_.clear();
      if (inLine) forward = h_.nextHop.mail;
    } else if (auto* rc = std::get_if<action::AddRecipient>(&a)) {
      if (r.forwarding) lines_.push_back("F: RCPT <" + std::string(rc->recipient) + ">");
      if (inLine) {
        std::optional<policy::Reply> special;
        if (h_.nextHop.rcptFor) special = h_.nextHop.rcptFor(rc->recipient);
        forward = special ? *special : h_.nextHop.rcpt;
      }
    } else if (auto* d = std::get_if<action::BeginData>(&a)) {
      if (r.forwarding) lines_.push_back(d->chunking ? "F: BDAT" : "F: DATA");
      body_.clear();
      if (inLine) forward = h_.nextHop.data;
    } else if (auto* c = std::get_if<action::BodyChunk>(&a)) {
      body_.append(c->bytes);
    } else if (auto* e = std::get_if<action::EndOfData>(&a)) {
      if (r.forwarding) {
        lines_.push_back("F: body \"" + escape(body_) + "\"");
        lines_.push_back("F: END " + std::to_string(e->size));
      }
      if (e->size != body_.size()) {
        lines_.push_back("(EndOfData size " + std::to_string(e->size) + " != body " +
                         std::to_string(body_.size()) + ")");
      }
      body_.clear();
      if (inLine) forward = h_.nextHop.end;
    } else if (std::holds_alternative<action::ResetTransaction>(a)) {
      if (r.forwarding) lines_.push_back("F: RESET");
      body_.clear();  // a prefix of an aborted message, its length depends on the split
    } else if (auto* ev = std::get_if<action::Event>(&a)) {
      if (r.events) {
        lines_.push_back(std::string("E: ") + toString(ev->stage) + " " +
                         (ev->decision.allowed ? "allow " : "deny ") +
                         std::string(ev->decision.reason) + " " +
                         std::to_string(ev->decision.reply.code));
      }
    }
  }

  const Harness& h_;
  Session& session_;
  std::vector<std::string> lines_;
  std::string body_;
  bool tlsPending_ = false;
};

}  // namespace

policy::SnapshotPtr exampleSnapshot(std::string_view folder) {
  static std::mutex mutex;
  static std::map<std::string, policy::SnapshotPtr, std::less<>> cache;
  std::lock_guard lock(mutex);
  auto it = cache.find(folder);
  if (it != cache.end()) return it->second;
  auto result = policy::compile(
      policy::loadManifestDirectory(std::string(KUBERELAY_SOURCE_DIR) + "/" + std::string(folder)));
  if (result.errorCount() > 0)
    throw std::runtime_error("example has errors: " + std::string(folder));
  cache.emplace(std::string(folder), result.snapshot);
  return result.snapshot;
}

Harness::Harness(std::string_view folder, std::string_view client, uint16_t port, SessionConfig cfg)
    : config(std::move(cfg)), snapshot_(exampleSnapshot(folder)), client_(client), port_(port) {
  if (config.hostName.empty()) config.hostName = "relay.test";
  if (config.clientAddress.empty()) config.clientAddress = client_;
}

std::string Harness::run(const std::vector<Step>& script, Split split, unsigned seed) const {
  auto local = policy::IpAddress::parse("0.0.0.0");
  auto remote = policy::IpAddress::parse(client_);
  if (!local || !remote) throw std::invalid_argument("bad address " + client_);
  Session session(policy::SessionPolicy::connect(snapshot_, {*local, port_, *remote}), config);
  Runner runner(*this, session);
  std::mt19937 random(seed);
  runner.start();
  for (const Step& step : script) {
    if (session.closed()) break;
    if (step.tls) {
      runner.tls();
    } else if (!runner.feed(step.bytes, split, random)) {
      break;
    }
  }
  return runner.finish();
}

void Harness::expect(const std::vector<Step>& script, std::string_view expected) const {
  const std::string want = transcript(expected);
  EXPECT_EQ(run(script, Split::Whole), want) << "fed in one piece per step";
  if (byteRuns) {
    EXPECT_EQ(run(script, Split::Bytes), want) << "fed byte by byte";
  }
  for (unsigned seed = 1; seed <= randomRuns; ++seed) {
    EXPECT_EQ(run(script, Split::Random, seed), want) << "fed in random pieces, seed " << seed;
  }
}

std::string transcript(std::string_view text) {
  if (!text.empty() && text.front() == '\n') text.remove_prefix(1);
  return std::string(text);
}

}  // namespace kuberelay::smtp::testing
