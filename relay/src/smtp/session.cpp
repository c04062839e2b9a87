// NAME
//   session.cpp - the ESMTP server state machine
// DESCRIPTION
//   process() feeds input to whichever reader the phase needs (command lines, DATA content,
//   a BDAT chunk, a chunk being skipped) until the input is used up or the session must wait
//   for its caller. Input that arrives while it waits is kept in pending_ and processed by
//   resume() when the wait ends, so pipelined commands keep their order.
#include "kuberelay/smtp/session.h"

#include <string.h>  // explicit_bzero

#include <algorithm>
#include <charconv>

#include "ascii.h"
#include "kuberelay/smtp/base64.h"
#include "kuberelay/smtp/replies.h"

namespace kuberelay::smtp {
namespace {

using policy::Decision;

EventStage stageOf(Verb verb) {
  switch (verb) {
    case Verb::Helo:
    case Verb::Ehlo:
      return EventStage::Ehlo;
    case Verb::Mail:
      return EventStage::Mail;
    case Verb::Rcpt:
      return EventStage::Rcpt;
    case Verb::Data:
    case Verb::Bdat:
      return EventStage::Data;
    case Verb::StartTls:
      return EventStage::StartTls;
    case Verb::Auth:
      return EventStage::Auth;
    default:
      return EventStage::Protocol;
  }
}

// "local@domain", "Postmaster", or "" for the null reverse-path.
std::string formatAddress(const Address& a) {
  std::string out;
  if (a.isNull) return out;
  out.reserve(a.local.size() + 1 + a.domain.size());
  out.append(a.local);
  if (!a.domain.empty()) {
    out.push_back('@');
    out.append(a.domain);
  }
  return out;
}

// A SASL response: base64, or "=" for an empty one (RFC 4954 §4).
bool decodeResponse(std::string_view response, std::string& out) {
  if (response == "=") {
    out.clear();
    return true;
  }
  return decodeBase64(response, out);
}

void wipe(std::string& s) {
  if (!s.empty()) explicit_bzero(s.data(), s.size());
  s.clear();
}

}  // namespace

Session::Session(policy::SessionPolicy policy, SessionConfig config)
    : policy_(policy), pristine_(std::move(policy)), config_(std::move(config)) {
  if (const policy::CompiledConnector* c = policy_.connector()) {
    limits_ = &c->spec.limits;
    if (config_.hostName.empty()) config_.hostName = c->spec.fqdn;
  }
  if (config_.hostName.empty()) config_.hostName = "localhost";
  // The HELO/EHLO greeting, "relay.example Hello [192.0.2.1]", is built once.
  greeting_ = config_.hostName + " Hello";
  if (!config_.clientAddress.empty()) greeting_ += " [" + config_.clientAddress + "]";
}

// ---------------------------------------------------------------------------------------------
// Entry points

void Session::start(Output& out) {
  sink_.out = &out;
  const Decision& d = policy_.connectDecision();
  event(EventStage::Connect, d, out);
  const policy::CompiledConnector* c = policy_.connector();
  if (d.allowed && c && c->bannerNeedsHostName) {
    banner_ = config_.hostName + " " + std::string(d.reply.text);
    out.reply(policy::Reply{d.reply.code, d.reply.enhanced, banner_});
  } else {
    out.reply(d.reply);
  }
  if (!d.allowed) close(out);
}

void Session::receive(std::string_view bytes, Output& out) {
  compactPending();
  sink_.out = &out;
  if (closed_ || waiting_ == Waiting::TlsHandshake) return;  // plaintext meant to precede TLS
  if (waiting_ != Waiting::Nothing) {
    keepPending(bytes, out);
    return;
  }
  process(bytes, out);
  keepPending(bytes, out);
}

void Session::onTlsEstablished(Output& out) {
  compactPending();
  sink_.out = &out;
  if (waiting_ != Waiting::TlsHandshake) return;
  // RFC 3207 §4.2: forget everything learnt before TLS (HELO name, authentication).
  policy_ = pristine_;
  policy_.tlsEstablished();
  waiting_ = Waiting::Nothing;
  pending_.clear();
  reader_.reset();
}

void Session::onCredentials(const policy::UserEntry* user, Output& out) {
  compactPending();
  sink_.out = &out;
  if (waiting_ != Waiting::Credentials) return;
  waiting_ = Waiting::Nothing;
  wipeCredentials();
  Decision d = policy_.authenticated(user);
  if (d.allowed) {
    event(EventStage::Auth, d, out);
    send(d.reply, out);
  } else {
    authFailure(d, out);
  }
  resume(out);
}

void Session::onForwardReply(const policy::Reply& reply, Output& out) {
  compactPending();
  sink_.out = &out;
  if (waiting_ != Waiting::NextHop) return;
  waiting_ = Waiting::Nothing;
  policy::Reply r = reply;
  if (r.code < 200 || r.code > 599) r = replies::kNextHopFailed;
  // The caller's reply text is only valid during this call; the Event needs it longer.
  forwardEnhanced_.assign(r.enhanced);
  forwardText_.assign(r.text);
  r.enhanced = forwardEnhanced_;
  r.text = forwardText_;
  const bool ok = r.positive();
  const Decision d{ok, r, ok ? "next_hop_accepted" : "next_hop_rejected"};
  switch (step_) {
    case NextHopStep::Mail:
      event(EventStage::Mail, d, out);
      mailAccepted_ = ok;
      nextHopTransaction_ = ok;
      send(r, out);
      break;
    case NextHopStep::Rcpt:
      event(EventStage::Rcpt, d, out);
      if (ok) ++recipients_;
      send(r, out);
      break;
    case NextHopStep::Data:
      if (ok) {
        startDataPhase(out);
      } else {
        event(EventStage::Data, d, out);
        resetTransaction(out);
        send(r, out);
      }
      break;
    case NextHopStep::Bdat:
      if (ok) {
        enterChunk(out);
      } else {
        event(EventStage::Data, d, out);
        resetTransaction(out);
        send(r, out);
        skipChunk(chunk_.size);  // the chunk's octets are on their way: read past them
      }
      break;
    case NextHopStep::EndOfData:
      event(EventStage::Data, d, out);
      nextHopTransaction_ = false;  // committed or refused there: nothing left to reset
      resetTransaction(out);
      send(r, out);
      break;
  }
  resume(out);
}

// ---------------------------------------------------------------------------------------------
// Input

void Session::process(std::string_view& in, Output& out) {
  while (!in.empty() && !closed_ && waiting_ == Waiting::Nothing) {
    switch (phase_) {
      case Phase::Data:
        in.remove_prefix(decoder_.decode(in, sink_));
        if (decoder_.done()) {
          phase_ = Phase::Command;
          endOfMessage(decoder_, out);
        }
        break;
      case Phase::BdatChunk:
        in.remove_prefix(bdat_.consume(in, sink_));
        if (bdat_.chunkComplete()) chunkComplete(out);
        break;
      case Phase::SkipChunk: {
        size_t n = static_cast<size_t>(std::min<uint64_t>(skipRemaining_, in.size()));
        in.remove_prefix(n);
        skipRemaining_ -= n;
        if (skipRemaining_ == 0) phase_ = Phase::Command;
        break;
      }
      default: {
        std::optional<Line> line = reader_.next(in);
        if (!line) return;
        handleLine(*line, out);
        if (waiting_ == Waiting::TlsHandshake) {
          in = {};  // CVE-2011-0411: nothing read before the handshake may count after it
          return;
        }
        break;
      }
    }
  }
}

void Session::keepPending(std::string_view in, Output& out) {
  if (in.empty() || closed_ || waiting_ == Waiting::TlsHandshake) return;
  if (pending_.size() + in.size() > config_.maxPendingInput) {
    pending_.clear();
    refuse(EventStage::Protocol, replies::kTooMuchPipelinedInput, "too_much_pipelined_input", out);
    close(out);
    return;
  }
  pending_.append(in);
}

void Session::resume(Output& out) {
  std::string_view in(pending_);
  in.remove_prefix(pendingUsed_);
  process(in, out);
  // What is left is kept for the next wait to end (or was dropped by STARTTLS or close).
  pendingUsed_ = (closed_ || waiting_ == Waiting::TlsHandshake) ? pending_.size()
                                                                : pending_.size() - in.size();
}

void Session::compactPending() {
  // Deferred to the next call so that views into pending_ in the last Output stay valid.
  if (pendingUsed_ > 0) {
    pending_.erase(0, pendingUsed_);
    pendingUsed_ = 0;
  }
}

// ---------------------------------------------------------------------------------------------
// Commands

void Session::logClientLine(const Line& line, Output& out) {
  if (phase_ != Phase::Command) {
    out.push(action::ClientLine{"****"});  // a SASL response: a password, or part of one
    return;
  }
  std::string_view text = line.text;
  if (text.size() > 5 && (text[0] == 'A' || text[0] == 'a') &&
      parseCommand(text).verb == Verb::Auth) {
    // "AUTH PLAIN <initial response>": keep the mechanism, mask the rest.
    size_t mech = text.find_first_not_of(' ', 4);
    size_t end = mech == std::string_view::npos ? text.size() : text.find(' ', mech);
    loggedLine_.assign(text.substr(0, end == std::string_view::npos ? text.size() : end));
    if (end != std::string_view::npos) loggedLine_ += " ****";
    text = loggedLine_;
  }
  out.push(action::ClientLine{text});
}

void Session::handleLine(const Line& line, Output& out) {
  if (config_.protocolLog) logClientLine(line, out);
  if (phase_ != Phase::Command) {
    authResponse(line, out);
    return;
  }
  if (line.error == LineError::TooLong) {
    protocolError(EventStage::Protocol, replies::kLineTooLong, "line_too_long", out);
  } else if (line.error == LineError::BareLineEnding) {
    protocolError(EventStage::Protocol, replies::kBareLineEndingInCommand, "bare_line_ending", out);
  } else {
    handleCommand(line.text, out);
  }
}

void Session::handleCommand(std::string_view text, Output& out) {
  using namespace command_flag;
  const Command c = parseCommand(text);
  const CommandSpec& spec = commandSpec(c.verb);
  const EventStage stage = stageOf(c.verb);
  if (c.verb == Verb::Unknown) {
    protocolError(stage, replies::kUnrecognizedCommand, "unknown_command", out);
    return;
  }
  if (c.verb == Verb::Bdat) {
    bdat(c.argument, out);  // its refusals must also skip the chunk
    return;
  }
  if ((spec.flags & kArgumentRequired) && c.argument.empty()) {
    protocolError(stage, *spec.syntax, "syntax", out);
    return;
  }
  if ((spec.flags & kNoArgument) && !c.argument.empty()) {
    protocolError(stage, *spec.syntax, "syntax", out);
    return;
  }
  if ((spec.flags & kNeedsHello) && hello_ == Hello::None) {
    protocolError(stage, replies::kSendHelloFirst, "bad_sequence", out);
    return;
  }
  if ((spec.flags & kNotInTransaction) && mailAccepted_) {
    protocolError(stage, replies::kBadSequence, "bad_sequence", out);
    return;
  }
  switch (c.verb) {
    case Verb::Helo:
      hello(Hello::Helo, c.argument, out);
      break;
    case Verb::Ehlo:
      hello(Hello::Ehlo, c.argument, out);
      break;
    case Verb::Mail:
      mail(c.argument, out);
      break;
    case Verb::Rcpt:
      rcpt(c.argument, out);
      break;
    case Verb::Data:
      data(out);
      break;
    case Verb::StartTls:
      startTls(out);
      break;
    case Verb::Auth:
      auth(c.argument, out);
      break;
    case Verb::Rset:
      resetTransaction(out);
      send(replies::kResetting, out);
      break;
    case Verb::Noop:
      send(replies::kOk, out);
      break;
    case Verb::Vrfy:
      send(replies::kCannotVrfy, out);
      break;
    case Verb::Help:
      send(replies::kHelp, out);
      break;
    case Verb::Quit:
      send(replies::kClosing, out);
      close(out);
      break;
    case Verb::Bdat:
    case Verb::Unknown:
      break;  // handled above
  }
}

void Session::hello(Hello kind, std::string_view argument, Output& out) {
  resetTransaction(out);
  hello_ = kind;
  heloName_.assign(argument.substr(0, kMaxDomain));
  const policy::Reply greeting{250, "", greeting_};
  event(EventStage::Ehlo, Decision{true, greeting, "ok"}, out);
  if (kind == Hello::Helo) {
    out.reply(greeting);
    return;
  }
  const policy::Advertisement ad = policy_.ehlo();
  char size[32] = "SIZE";
  size_t sizeLength = 4;
  if (ad.sizeLimit > 0) {
    size[sizeLength++] = ' ';
    auto [end, ec] = std::to_chars(size + sizeLength, size + sizeof size, ad.sizeLimit);
    (void)ec;
    sizeLength = static_cast<size_t>(end - size);
  }
  std::string_view lines[9];
  size_t count = 0;
  lines[count++] = greeting_;
  lines[count++] = "PIPELINING";
  lines[count++] = std::string_view(size, sizeLength);
  lines[count++] = "8BITMIME";
  lines[count++] = "ENHANCEDSTATUSCODES";
  lines[count++] = "SMTPUTF8";
  lines[count++] = "CHUNKING";
  if (ad.startTls) lines[count++] = "STARTTLS";
  if (ad.auth) lines[count++] = "AUTH PLAIN LOGIN";
  for (size_t i = 0; i < count; ++i)
    out.replyLine(policy::Reply{250, "", lines[i]}, i + 1 == count);
}

void Session::mail(std::string_view argument, Output& out) {
  if (mailAccepted_) {
    protocolError(EventStage::Mail, replies::kSenderAlreadySpecified, "bad_sequence", out);
    return;
  }
  MailFromArguments args;
  if (ParseError e = parseMailFrom(argument, args)) {
    protocolError(EventStage::Mail, *e.reply, e.reason, out);
    return;
  }
  if (args.params.body == BodyType::BinaryMime) {
    // Not advertised: BINARYMIME content could not be checked for bare line endings.
    protocolError(EventStage::Mail, replies::kUnsupportedParameter, "unsupported_parameter", out);
    return;
  }
  std::string canonical;
  const Decision d = policy_.mailFrom(args.sender.canonical(canonical), args.params.size);
  event(EventStage::Mail, d, out, d.allowed ? std::string() : formatAddress(args.sender));
  if (!d.allowed) {
    send(d.reply, out);
    return;
  }
  params_ = args.params;
  nextHopTransaction_ = true;
  out.push(action::BeginTransaction{formatAddress(args.sender), params_});
  if (config_.forwardMode == ForwardMode::InLine) {
    awaitNextHop(NextHopStep::Mail);
    return;
  }
  mailAccepted_ = true;
  send(d.reply, out);
}

void Session::rcpt(std::string_view argument, Output& out) {
  if (!mailAccepted_) {
    protocolError(EventStage::Rcpt, replies::kNeedMail, "bad_sequence", out);
    return;
  }
  if (chunking_) {
    protocolError(EventStage::Rcpt, replies::kBadSequence, "bad_sequence", out);
    return;
  }
  RcptToArguments args;
  if (ParseError e = parseRcptTo(argument, params_.smtpUtf8, args)) {
    protocolError(EventStage::Rcpt, *e.reply, e.reason, out);
    return;
  }
  std::string canonical;
  const Decision d = policy_.rcptTo(args.recipient.canonical(canonical), recipients_);
  event(EventStage::Rcpt, d, out, d.allowed ? std::string() : formatAddress(args.recipient));
  if (!d.allowed) {
    send(d.reply, out);
    return;
  }
  out.push(action::AddRecipient{formatAddress(args.recipient)});
  if (config_.forwardMode == ForwardMode::InLine) {
    awaitNextHop(NextHopStep::Rcpt);
    return;
  }
  ++recipients_;
  send(d.reply, out);
}

void Session::data(Output& out) {
  if (!mailAccepted_) {
    protocolError(EventStage::Data, replies::kNeedMail, "bad_sequence", out);
  } else if (chunking_) {
    protocolError(EventStage::Data, replies::kBadSequence, "bad_sequence", out);  // RFC 3030 §3
  } else if (recipients_ == 0) {
    protocolError(EventStage::Data, replies::kNeedRcpt, "bad_sequence", out);
  } else {
    out.push(action::BeginData{false});
    if (config_.forwardMode == ForwardMode::InLine) {
      awaitNextHop(NextHopStep::Data);
    } else {
      startDataPhase(out);
    }
  }
}

void Session::bdat(std::string_view argument, Output& out) {
  BdatArguments b;
  if (argument.empty() || parseBdat(argument, b)) {
    // Without a size there is no telling where the chunk ends: the stream is lost.
    refuse(EventStage::Data, replies::kBdatSyntax, "syntax", out);
    refuse(EventStage::Protocol, replies::kLostSynchronization, "lost_synchronization", out);
    close(out);
    return;
  }
  chunk_ = b;
  const policy::Reply* sequence = nullptr;
  if (hello_ == Hello::None) {
    sequence = &replies::kSendHelloFirst;
  } else if (!mailAccepted_) {
    sequence = &replies::kNeedMail;
  } else if (recipients_ == 0) {
    sequence = &replies::kNeedRcpt;
  }
  if (sequence) {
    protocolError(EventStage::Data, *sequence, "bad_sequence", out);
    if (!closed_) skipChunk(b.size);
    return;
  }
  if (!chunking_) {
    chunking_ = true;
    bdat_.beginMessage(bodyLimits());
    out.push(action::BeginData{true});
    if (config_.forwardMode == ForwardMode::InLine) {
      awaitNextHop(NextHopStep::Bdat);
      return;
    }
  }
  enterChunk(out);
}

void Session::startTls(Output& out) {
  const Decision d = policy_.startTls();
  event(EventStage::StartTls, d, out);
  send(d.reply, out);
  if (!d.allowed) return;
  out.push(action::StartTls{});
  waiting_ = Waiting::TlsHandshake;
  reader_.reset();
  hello_ = Hello::None;
  heloName_.clear();
}

// ---------------------------------------------------------------------------------------------
// AUTH PLAIN (RFC 4616) and AUTH LOGIN

void Session::auth(std::string_view argument, Output& out) {
  AuthArguments a;
  if (ParseError e = parseAuth(argument, a)) {
    protocolError(EventStage::Auth, *e.reply, e.reason, out);
    return;
  }
  // A bounded label for metrics: the mechanisms we know, else "other".
  authMechanism_ = iequals(a.mechanism, "PLAIN")   ? "PLAIN"
                   : iequals(a.mechanism, "LOGIN") ? "LOGIN"
                                                   : "other";
  const Decision d = policy_.authStart(a.mechanism);
  if (!d.allowed) {
    event(EventStage::Auth, d, out);
    send(d.reply, out);
    return;
  }
  // authStart allows PLAIN and LOGIN only.
  if (iequals(a.mechanism, "PLAIN")) {
    if (a.initialResponse) {
      plainResponse(*a.initialResponse, out);
      return;
    }
    phase_ = Phase::AuthPlainResponse;
    reader_.setMaxLine(kMaxAuthLine);
    send(replies::kAuthContinue, out);
    return;
  }
  if (a.initialResponse) {
    if (!decodeResponse(*a.initialResponse, authUser_)) {
      wipeCredentials();
      protocolError(EventStage::Auth, replies::kAuthCannotDecode, "cannot_decode", out);
      return;
    }
    phase_ = Phase::AuthLoginPassword;
    reader_.setMaxLine(kMaxAuthLine);
    send(replies::kAuthPasswordPrompt, out);
    return;
  }
  phase_ = Phase::AuthLoginUser;
  reader_.setMaxLine(kMaxAuthLine);
  send(replies::kAuthUsernamePrompt, out);
}

void Session::authResponse(const Line& line, Output& out) {
  const Phase phase = phase_;
  if (line.error != LineError::None || line.text == "*" || phase != Phase::AuthLoginUser) {
    endAuthExchange();
  }
  if (line.error != LineError::None) {
    wipeCredentials();
    protocolError(EventStage::Auth,
                  line.error == LineError::TooLong ? replies::kLineTooLong
                                                   : replies::kBareLineEndingInCommand,
                  line.error == LineError::TooLong ? "line_too_long" : "bare_line_ending", out);
    return;
  }
  if (line.text == "*") {
    wipeCredentials();
    protocolError(EventStage::Auth, replies::kAuthCancelled, "cancelled", out);
    return;
  }
  switch (phase) {
    case Phase::AuthPlainResponse:
      plainResponse(line.text, out);
      break;
    case Phase::AuthLoginUser:
      if (!decodeResponse(line.text, authUser_)) {
        endAuthExchange();
        wipeCredentials();
        protocolError(EventStage::Auth, replies::kAuthCannotDecode, "cannot_decode", out);
        return;
      }
      phase_ = Phase::AuthLoginPassword;
      send(replies::kAuthPasswordPrompt, out);
      break;
    case Phase::AuthLoginPassword:
      if (!decodeResponse(line.text, authSecret_)) {
        wipeCredentials();
        protocolError(EventStage::Auth, replies::kAuthCannotDecode, "cannot_decode", out);
        return;
      }
      verify(authUser_, authSecret_, out);
      break;
    default:
      break;
  }
}

void Session::plainResponse(std::string_view response, Output& out) {
  if (!decodeResponse(response, authSecret_)) {
    wipeCredentials();
    protocolError(EventStage::Auth, replies::kAuthCannotDecode, "cannot_decode", out);
    return;
  }
  // authzid NUL authcid NUL passwd
  const std::string_view s = authSecret_;
  const size_t first = s.find('\0');
  const size_t second = first == s.npos ? s.npos : s.find('\0', first + 1);
  if (second == s.npos || s.find('\0', second + 1) != s.npos) {
    wipeCredentials();
    protocolError(EventStage::Auth, replies::kAuthCannotDecode, "cannot_decode", out);
    return;
  }
  const std::string_view authzid = s.substr(0, first);
  const std::string_view authcid = s.substr(first + 1, second - first - 1);
  const std::string_view password = s.substr(second + 1);
  if (!authzid.empty() && !iequals(authzid, authcid)) {
    // Acting for another identity is not a right this relay grants.
    wipeCredentials();
    authFailure(Decision{false, policy::replies::kAuthFailed, "authzid_mismatch"}, out);
    return;
  }
  verify(authcid, password, out);
}

void Session::verify(std::string_view user, std::string_view password, Output& out) {
  out.push(action::VerifyCredentials{user, password});
  waiting_ = Waiting::Credentials;
}

void Session::endAuthExchange() {
  phase_ = Phase::Command;
  reader_.setMaxLine(kMaxCommandLine);
}

void Session::wipeCredentials() {
  wipe(authUser_);
  wipe(authSecret_);
}

void Session::authFailure(const Decision& decision, Output& out) {
  event(EventStage::Auth, decision, out);
  send(decision.reply, out, TarpitKind::Auth);
  ++logonFailures_;
  if (limits_ && limits_->maxLogonFailures && logonFailures_ >= limits_->maxLogonFailures) {
    refuse(EventStage::Auth, replies::kTooManyLogonFailures, "too_many_logon_failures", out);
    close(out);
  }
}

// ---------------------------------------------------------------------------------------------
// Content

BodyLimits Session::bodyLimits() const {
  BodyLimits l;
  l.normalizeBareLineEndings = config_.normalizeBareLineEndings;
  l.maxMessageSize = policy_.ehlo().sizeLimit;  // 0 for clients that bypass the size limit
  if (limits_) {
    l.maxHeaderSize = limits_->maxHeaderSize;
    l.maxHopCount = limits_->maxHopCount;
  }
  return l;
}

void Session::startDataPhase(Output& out) {
  send(replies::kStartMailInput, out);
  decoder_.reset(bodyLimits(), DataDecoder::Framing::DotStuffed);
  phase_ = Phase::Data;
}

void Session::enterChunk(Output& out) {
  bdat_.beginChunk(chunk_.size, chunk_.last);
  phase_ = Phase::BdatChunk;
  if (chunk_.size == 0) {
    bdat_.consume({}, sink_);
    chunkComplete(out);
  }
}

void Session::skipChunk(uint64_t size) {
  skipRemaining_ = size;
  phase_ = size > 0 ? Phase::SkipChunk : Phase::Command;
}

void Session::chunkComplete(Output& out) {
  phase_ = Phase::Command;
  if (chunk_.last) {
    endOfMessage(bdat_.decoder(), out);
    return;
  }
  char text[48];
  auto [end, ec] = std::to_chars(text, text + 24, chunk_.size);
  (void)ec;
  constexpr std::string_view kSuffix = " octets received";
  end = std::copy(kSuffix.begin(), kSuffix.end(), end);
  send(policy::Reply{250, "2.0.0", std::string_view(text, static_cast<size_t>(end - text))}, out);
}

void Session::endOfMessage(const DataDecoder& decoder, Output& out) {
  Decision d;
  switch (decoder.error()) {
    case BodyError::BareLineEnding:
      d = {false, replies::kBareLineEndingInBody, "bare_line_ending"};
      break;
    case BodyError::LineTooLong:
      d = {false, replies::kLineTooLongInBody, "line_too_long"};
      break;
    case BodyError::HeaderTooLarge:
      d = {false, replies::kHeaderTooLarge, "header_too_large"};
      break;
    case BodyError::HopCountExceeded:
      d = {false, replies::kHopCountExceeded, "hop_count_exceeded"};
      break;
    case BodyError::None:
    case BodyError::MessageTooLarge:
      d = policy_.messageSize(decoder.size());
      if (d.allowed && decoder.error() == BodyError::MessageTooLarge) {
        d = {false, policy::replies::kMessageTooBig, "size_exceeded"};
      }
      break;
  }
  if (!d.allowed) {
    event(EventStage::Data, d, out, std::to_string(decoder.size()));
    resetTransaction(out);  // nothing of this content may be delivered
    send(d.reply, out);
    return;
  }
  if (config_.forwardMode == ForwardMode::InLine) {
    event(EventStage::Data, d, out);  // the policy's verdict; the next hop's follows
    out.push(action::EndOfData{decoder.size()});
    awaitNextHop(NextHopStep::EndOfData);
    return;
  }
  out.push(action::EndOfData{decoder.size()});
  event(EventStage::Data, Decision{true, replies::kQueued, d.reason}, out);
  nextHopTransaction_ = false;
  resetTransaction(out);
  send(replies::kQueued, out);
}

// ---------------------------------------------------------------------------------------------
// Transaction and replies

void Session::awaitNextHop(NextHopStep step) {
  step_ = step;
  waiting_ = Waiting::NextHop;
}

void Session::resetTransaction(Output& out) {
  if (nextHopTransaction_) out.push(action::ResetTransaction{});
  nextHopTransaction_ = false;
  mailAccepted_ = false;
  chunking_ = false;
  recipients_ = 0;
  params_ = MailParameters{};
}

void Session::send(const policy::Reply& reply, Output& out, TarpitKind tarpit) {
  if (reply.code >= 500 && limits_) {
    policy::Millis delay =
        tarpit == TarpitKind::Auth ? limits_->authTarpitInterval : limits_->tarpitInterval;
    if (delay.count() > 0) out.push(action::Tarpit{delay});
  }
  out.reply(reply);
}

void Session::event(EventStage stage, const Decision& decision, Output& out, std::string input) {
  out.push(action::Event{stage, decision, std::move(input)});
}

void Session::refuse(EventStage stage, const policy::Reply& reply, std::string_view reason,
                     Output& out) {
  out.push(action::Event{stage, Decision{false, reply, reason}, {}, false});
  send(reply, out);
}

void Session::protocolError(EventStage stage, const policy::Reply& reply, std::string_view reason,
                            Output& out) {
  refuse(stage, reply, reason, out);
  ++protocolErrors_;
  if (limits_ && limits_->maxProtocolErrors && protocolErrors_ >= limits_->maxProtocolErrors) {
    refuse(EventStage::Protocol, replies::kTooManyErrors, "too_many_errors", out);
    close(out);
  }
}

void Session::close(Output& out) {
  if (closed_) return;
  out.push(action::Close{});
  closed_ = true;
  wipeCredentials();  // pending_ goes at the next call: the last Output may still view it
}

}  // namespace kuberelay::smtp
