// NAME
//   engine.h - per-session policy decisions at every SMTP stage
// SYNOPSIS
//   auto session = SessionPolicy::connect(snapshot, {local, port, remote});
//   session.connectDecision();          // 220 banner, 554 5.7.1, 421 4.3.5
//   session.ehlo();                     // what to advertise
//   session.startTls(); session.tlsEstablished();
//   session.authStart("PLAIN"); session.authenticated(user or nullptr);
//   session.mailFrom(sender, size);     // Submit, AnonymousOnly, requireTLS, size, sender rights
//   session.rcptTo(recipient, n);       // accepted domains or Accept-Any-Recipient
//   session.messageSize(bytes);
// DESCRIPTION
//   Pure: no I/O, no clock, no logging. The SMTP state machine calls it; the decision carries
//   the exact reply and a short reason label for metrics and logs. A Trace, when passed,
//   records why; without one nothing is recorded and nothing allocates.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kuberelay/policy/reply.h"
#include "kuberelay/policy/snapshot.h"

namespace kuberelay::policy {

enum class Stage : uint8_t { Connect, Ehlo, StartTls, Auth, MailFrom, RcptTo, Data };
const char* toString(Stage stage);

struct Decision {
  Decision() = default;
  Decision(bool allowedIn, Reply replyIn, std::string_view reasonIn)
      : allowed(allowedIn), reply(replyIn), reason(reasonIn) {}

  bool allowed = false;
  Reply reply;
  std::string_view reason;  // bounded set, e.g. "ok", "relay_denied", "anonymous_off_list"
  // enforcement: Audit: the policy would have refused (wouldRefuse, wouldRefuseReason) but the
  // session proceeds; `reply` is then the positive reply of the stage.
  bool audited = false;
  Reply wouldRefuse;
  std::string_view wouldRefuseReason;
};

// An envelope address split at its last '@'. The null reverse-path has isNull set.
struct MailAddress {
  std::string_view local;
  std::string_view domain;
  bool isNull = false;
  // Splits "user@example.com" or "<user@example.com>"; "<>" and "" are the null path.
  static MailAddress split(std::string_view text);
};

struct TraceStep {
  Stage stage;
  std::string rule;    // "connector-selection", "submit-right", "accepted-domain", ...
  std::string detail;  // human text
};
struct Trace {
  std::vector<TraceStep> steps;
  void add(Stage stage, std::string rule, std::string detail) {
    steps.push_back({stage, std::move(rule), std::move(detail)});
  }
};

struct Advertisement {
  bool startTls = false;
  bool auth = false;       // AUTH PLAIN LOGIN
  uint64_t sizeLimit = 0;  // SIZE value
};

class SessionPolicy {
public:
  static SessionPolicy connect(SnapshotPtr snapshot, const ConnectionFacts& facts,
                               Trace* trace = nullptr);
  // A session with no policy at all: every stage answers 421 4.3.2 (fail closed, temporarily).
  static SessionPolicy noPolicy();

  const Decision& connectDecision() const { return connect_; }
  const CompiledConnector* connector() const { return selection_.connector; }
  const Snapshot* snapshot() const { return snapshot_.get(); }
  bool inRemoteRange() const { return selection_.inRemoteRange; }

  Advertisement ehlo() const;
  Decision startTls(Trace* trace = nullptr) const;
  void tlsEstablished() { tls_ = true; }
  bool tlsActive() const { return tls_; }

  // Whether AUTH with this mechanism (PLAIN, LOGIN) may start now.
  Decision authStart(std::string_view mechanism, Trace* trace = nullptr) const;
  // The relay checked the password: `user` is the entry it verified, nullptr on failure.
  // Succeeds only when the user then holds Submit on this connector.
  Decision authenticated(const UserEntry* user, Trace* trace = nullptr);
  bool isAuthenticated() const { return user_ != nullptr; }
  const UserEntry* user() const { return user_; }

  Decision mailFrom(const MailAddress& sender, std::optional<uint64_t> declaredSize,
                    Trace* trace = nullptr) const;
  Decision rcptTo(const MailAddress& recipient, uint32_t acceptedSoFar,
                  Trace* trace = nullptr) const;
  Decision messageSize(uint64_t bytes, Trace* trace = nullptr) const;

  // Effective rights of the session as it stands (after AUTH, the user's).
  Rights rights() const;
  // "anonymous", "externally-secured", "user:NAME"
  std::string principalDescription() const;
  bool externallySecured() const;

private:
  SessionPolicy() = default;
  const Grant& baseGrant() const;
  Decision decideMailFrom(const MailAddress& sender, std::optional<uint64_t> declaredSize,
                          Trace* trace) const;
  Decision decideRcptTo(const MailAddress& recipient, uint32_t acceptedSoFar, Trace* trace) const;
  Decision decideMessageSize(uint64_t bytes, Trace* trace) const;
  // Audit mode: a refusal becomes a positive `ok` reply that remembers the refusal, except
  // where auditing would weaken security (see engine.cpp).
  Decision audit(Stage stage, Decision decision, Reply ok, Trace* trace) const;
  SnapshotPtr snapshot_;
  Selection selection_;
  Decision connect_;
  const UserEntry* user_ = nullptr;
  bool tls_ = false;
};

}  // namespace kuberelay::policy
