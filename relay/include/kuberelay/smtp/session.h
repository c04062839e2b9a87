// NAME
//   session.h - the ESMTP server state machine of one client connection
// SYNOPSIS
//   Session session(SessionPolicy::connect(snapshot, facts), {.hostName = "relay-0.example"});
//   Output out;
//   session.start(out);                        // 220 banner (or the refusal, then Close)
//   session.receive(bytesRead, out);           // any split of the client's stream
//   ...act on out.actions() in order, then out.clear()...
//   session.onCredentials(verifiedEntryOrNull, out);   // after VerifyCredentials
//   session.onForwardReply(nextHopReply, out);         // after a forwarding action
//   session.onTlsEstablished(out);                     // after StartTls
// DESCRIPTION
//   Pure: no sockets, clocks, threads or logging, so that whole conversations are testable as
//   transcripts. Bytes go in, Actions come out (output.h). Every stage asks the
//   SessionPolicy and passes its reply through exactly; the protocol layer adds only protocol
//   replies (replies.h).
//   Forwarding is the normal path: MAIL, RCPT, DATA/first BDAT and the end of the content are
//   each handed to the next hop and the session waits for its verdict, which it relays, so the
//   client never gets 250 for mail the next hop has not taken (a failed next hop is a 4xx).
//   ForwardMode::PolicyOnly answers from the policy alone (tests, drop directories).
//   While the session waits (waiting() != Nothing) the caller should stop reading; bytes it
//   passes anyway are kept, up to maxPendingInput, and processed in order afterwards.
//   Defences (style.md §2): command lines of 512 octets, bare CR/LF/NUL refused, a protocol
//   error budget (limits.maxProtocolErrors: unknown commands, syntax and sequence errors; the
//   error that reaches it is answered, then 421 and Close), a logon failure budget
//   (limits.maxLogonFailures), both unlimited when 0, tarpits (limits.tarpitInterval, and
//   authTarpitInterval for 535) before 5xx replies, plaintext pipelined after STARTTLS dropped,
//   bare line endings in content refused or normalised (SMTP smuggling), and every content limit
//   checked before the next hop is asked to commit.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "kuberelay/policy/engine.h"
#include "kuberelay/smtp/command.h"
#include "kuberelay/smtp/data_decoder.h"
#include "kuberelay/smtp/line_reader.h"
#include "kuberelay/smtp/output.h"

namespace kuberelay::smtp {

// Bytes a client may pipeline while the session waits for a verdict, when the caller keeps
// reading anyway.
inline constexpr size_t kMaxPendingInput = 1024 * 1024;

enum class ForwardMode : uint8_t {
  InLine,      // forwarding actions wait for onForwardReply(); the next hop's replies are relayed
  PolicyOnly,  // forwarding actions are only reported; replies come from the policy
};

struct SessionConfig {
  std::string hostName;       // in HELO/EHLO replies; empty: the connector's fqdn, else localhost
  std::string clientAddress;  // "192.0.2.1", shown in the HELO/EHLO reply when given
  ForwardMode forwardMode = ForwardMode::InLine;
  bool normalizeBareLineEndings = false;  // else content with bare CR/LF is refused (550 5.6.11)
  size_t maxPendingInput = kMaxPendingInput;
  bool protocolLog = false;  // emit ClientLine actions (connector protocolLogging: Verbose)
};

enum class Waiting : uint8_t {
  Nothing,
  TlsHandshake,  // after StartTls, until onTlsEstablished()
  Credentials,   // after VerifyCredentials, until onCredentials()
  NextHop,       // after a forwarding action, until onForwardReply()
};

class Session {
public:
  Session(policy::SessionPolicy policy, SessionConfig config);

  // The greeting: 220 and the banner, or the connect refusal followed by Close.
  void start(Output& out);
  // Client octets, any amount, split anywhere.
  void receive(std::string_view bytes, Output& out);
  // The TLS handshake that StartTls asked for has completed: the client starts over with EHLO.
  void onTlsEstablished(Output& out);
  // The result of VerifyCredentials: the entry that matched, or nullptr.
  void onCredentials(const policy::UserEntry* user, Output& out);
  // The next hop's reply to the pending forwarding action (any code outside 200-599 is taken as
  // a failed next hop: 451 4.4.0).
  void onForwardReply(const policy::Reply& reply, Output& out);

  Waiting waiting() const { return waiting_; }
  bool wantsInput() const { return !closed_ && waiting_ == Waiting::Nothing; }
  bool closed() const { return closed_; }
  // A mail transaction is under way (MAIL accepted, content being read, or a next hop asked):
  // a draining relay lets it finish.
  bool inTransaction() const {
    return mailAccepted_ || phase_ == Phase::Data || phase_ == Phase::BdatChunk ||
           phase_ == Phase::SkipChunk || waiting_ == Waiting::NextHop;
  }
  const policy::SessionPolicy& policy() const { return policy_; }
  std::string_view heloName() const { return heloName_; }
  uint32_t protocolErrors() const { return protocolErrors_; }
  uint32_t logonFailures() const { return logonFailures_; }
  // The mechanism of the last AUTH command: "PLAIN", "LOGIN" or "other" (a metrics label).
  std::string_view authMechanism() const { return authMechanism_; }

private:
  enum class Phase : uint8_t {
    Command,
    AuthPlainResponse,
    AuthLoginUser,
    AuthLoginPassword,
    Data,
    BdatChunk,
    SkipChunk,
  };
  enum class Hello : uint8_t { None, Helo, Ehlo };
  enum class NextHopStep : uint8_t { Mail, Rcpt, Data, Bdat, EndOfData };
  enum class TarpitKind : uint8_t { Normal, Auth };

  class OutputSink : public BodySink {
  public:
    void chunk(std::string_view bytes) override { out->push(action::BodyChunk{bytes}); }
    Output* out = nullptr;
  };

  void process(std::string_view& in, Output& out);
  void keepPending(std::string_view in, Output& out);
  void resume(Output& out);
  void compactPending();

  void handleLine(const Line& line, Output& out);
  void logClientLine(const Line& line, Output& out);
  void handleCommand(std::string_view text, Output& out);
  void hello(Hello kind, std::string_view argument, Output& out);
  void mail(std::string_view argument, Output& out);
  void rcpt(std::string_view argument, Output& out);
  void data(Output& out);
  void bdat(std::string_view argument, Output& out);
  void startTls(Output& out);
  void auth(std::string_view argument, Output& out);
  void authResponse(const Line& line, Output& out);
  void plainResponse(std::string_view response, Output& out);
  void verify(std::string_view user, std::string_view password, Output& out);
  void endAuthExchange();
  void wipeCredentials();

  void startDataPhase(Output& out);
  void enterChunk(Output& out);
  void skipChunk(uint64_t size);
  void chunkComplete(Output& out);
  void endOfMessage(const DataDecoder& decoder, Output& out);
  BodyLimits bodyLimits() const;

  void awaitNextHop(NextHopStep step);
  void resetTransaction(Output& out);

  void send(const policy::Reply& reply, Output& out, TarpitKind tarpit = TarpitKind::Normal);
  void event(EventStage stage, const policy::Decision& decision, Output& out,
             std::string input = {});
  void refuse(EventStage stage, const policy::Reply& reply, std::string_view reason, Output& out);
  void protocolError(EventStage stage, const policy::Reply& reply, std::string_view reason,
                     Output& out);
  void authFailure(const policy::Decision& decision, Output& out);
  void close(Output& out);

  policy::SessionPolicy policy_;
  policy::SessionPolicy pristine_;  // as connected: STARTTLS forgets everything (RFC 3207 §4.2)
  SessionConfig config_;
  const policy::Limits* limits_ = nullptr;  // the connector's, when there is one

  LineReader reader_;
  DataDecoder decoder_;
  BdatReader bdat_;
  OutputSink sink_;
  std::string pending_;  // input that arrived while waiting
  size_t pendingUsed_ = 0;

  Phase phase_ = Phase::Command;
  Waiting waiting_ = Waiting::Nothing;
  NextHopStep step_ = NextHopStep::Mail;
  bool closed_ = false;
  Hello hello_ = Hello::None;
  std::string heloName_;
  std::string banner_;
  std::string loggedLine_;
  std::string_view authMechanism_ = "none";  // the masked line of the last ClientLine  //
                                             // "relay-0.example KubeRelay ESMTP service ready"
  std::string greeting_;                     // "relay.example Hello [192.0.2.1]"

  // The transaction.
  bool mailAccepted_ = false;
  bool nextHopTransaction_ = false;  // the next hop holds part of it: reset it there too
  bool chunking_ = false;            // BDAT used in it
  uint32_t recipients_ = 0;
  MailParameters params_;
  BdatArguments chunk_;
  uint64_t skipRemaining_ = 0;

  // SASL. Decoded credentials live here only until onCredentials().
  std::string authUser_;
  std::string authSecret_;

  // The next hop's last reply, kept for the Event that reports it.
  std::string forwardEnhanced_;
  std::string forwardText_;

  uint32_t protocolErrors_ = 0;
  uint32_t logonFailures_ = 0;
};

}  // namespace kuberelay::smtp
