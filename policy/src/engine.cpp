#include "kuberelay/policy/engine.h"

#include "ascii.h"
#include "units.h"

namespace kuberelay::policy {
namespace {

Decision allow(Reply reply, std::string_view reason) { return Decision{true, reply, reason}; }
Decision refuse(Reply reply, std::string_view reason) { return Decision{false, reply, reason}; }

// "user@dom", "*@dom", "*@*.dom" against an address (both compared case-insensitively).
bool matchesPattern(std::string_view pattern, const MailAddress& a) {
  size_t at = pattern.find('@');
  std::string_view local = pattern.substr(0, at), domain = pattern.substr(at + 1);
  std::string_view addrDomain = a.domain;
  if (!addrDomain.empty() && addrDomain.back() == '.') addrDomain.remove_suffix(1);
  if (local != "*" && !iequals(local, a.local)) return false;
  if (domain.substr(0, 2) == "*.") {
    std::string_view suffix = domain.substr(1);  // ".example.com"
    return addrDomain.size() > suffix.size() &&
           iequals(addrDomain.substr(addrDomain.size() - suffix.size()), suffix);
  }
  return iequals(domain, addrDomain);
}

bool matchesAny(const std::vector<std::string>& patterns, const MailAddress& a) {
  for (const auto& p : patterns) {
    if (matchesPattern(p, a)) return true;
  }
  return false;
}

bool sameAddress(std::string_view full, const MailAddress& a) {
  size_t at = full.rfind('@');
  if (at == std::string_view::npos) return false;
  std::string_view domain = a.domain;
  if (!domain.empty() && domain.back() == '.') domain.remove_suffix(1);
  return iequals(full.substr(0, at), a.local) && iequals(full.substr(at + 1), domain);
}

std::string describe(const MailAddress& a) {
  if (a.isNull) return "<>";
  return "<" + std::string(a.local) + "@" + std::string(a.domain) + ">";
}

}  // namespace

const char* toString(Stage stage) {
  switch (stage) {
    case Stage::Connect:
      return "connect";
    case Stage::Ehlo:
      return "ehlo";
    case Stage::StartTls:
      return "starttls";
    case Stage::Auth:
      return "auth";
    case Stage::MailFrom:
      return "mail";
    case Stage::RcptTo:
      return "rcpt";
    case Stage::Data:
      return "data";
  }
  return "?";
}

MailAddress MailAddress::split(std::string_view text) {
  if (text.size() >= 2 && text.front() == '<' && text.back() == '>') {
    text = text.substr(1, text.size() - 2);
  }
  MailAddress a;
  if (text.empty()) {
    a.isNull = true;
    return a;
  }
  size_t at = text.rfind('@');
  if (at == std::string_view::npos) {
    a.local = text;
    return a;
  }
  a.local = text.substr(0, at);
  a.domain = text.substr(at + 1);
  return a;
}

SessionPolicy SessionPolicy::noPolicy() {
  SessionPolicy s;
  s.connect_ = refuse(replies::kNoPolicy, "no_policy");
  return s;
}

SessionPolicy SessionPolicy::connect(SnapshotPtr snapshot, const ConnectionFacts& facts,
                                     Trace* trace) {
  if (!snapshot) return noPolicy();
  SessionPolicy s;
  s.snapshot_ = std::move(snapshot);
  s.selection_ = s.snapshot_->select(facts);
  const CompiledConnector* c = s.selection_.connector;
  if (!c) {
    s.connect_ = refuse(replies::kNoConnector, "no_connector");
    if (trace) {
      trace->add(Stage::Connect, "connector-selection",
                 "no enabled connector binds port " + std::to_string(facts.localPort) +
                     " with a remote range containing " + facts.remoteAddress.toString());
    }
    return s;
  }
  if (trace) {
    std::string how;
    if (s.selection_.inRemoteRange) {
      const IpRange* best = nullptr;
      for (const auto& r : c->spec.remoteIPRanges) {
        if (r.contains(facts.remoteAddress) && (!best || r.span() < best->span())) best = &r;
      }
      how = "remote range " + (best ? best->toString() : std::string("?")) +
            " is the most specific match";
    } else {
      how =
          "client is outside remoteIPRanges; ipRestrictionMode AnonymousOnly still serves it "
          "(it must authenticate)";
    }
    trace->add(Stage::Connect, "connector-selection",
               "ReceiveConnector " + c->id + " on " +
                   (s.selection_.specificBinding ? facts.localAddress.toString()
                                                 : std::string("any address")) +
                   ":" + std::to_string(facts.localPort) + ": " + how);
  }
  if (c->quarantined) {
    s.connect_ = refuse(replies::kConnectorMisconfigured, "connector_misconfigured");
    if (trace) trace->add(Stage::Connect, "quarantine", c->quarantineReason);
    return s;
  }
  s.connect_ = allow(Reply{220, "", c->bannerText}, "ok");
  return s;
}

bool SessionPolicy::externallySecured() const {
  const CompiledConnector* c = selection_.connector;
  // Only clients inside remoteIPRanges are "externally secured": under AnonymousOnly an
  // off-list client must never inherit that trust.
  return c && c->hasMechanism(auth_mechanism::kExternalAuthoritative) && selection_.inRemoteRange;
}

const Grant& SessionPolicy::baseGrant() const {
  const CompiledConnector* c = selection_.connector;
  return externallySecured() ? c->externallySecured : c->anonymous;
}

Rights SessionPolicy::rights() const {
  if (!selection_.connector || !connect_.allowed) return 0;
  Rights r = user_ ? user_->grant.effective() : baseGrant().effective();
  if (user_ && externallySecured()) r |= selection_.connector->externallySecured.effective();
  return r;
}

std::string SessionPolicy::principalDescription() const {
  if (user_) return "user " + user_->name;
  return externallySecured() ? "externally secured" : "anonymous";
}

Advertisement SessionPolicy::ehlo() const {
  Advertisement a;
  const CompiledConnector* c = selection_.connector;
  if (!c || !connect_.allowed) return a;
  a.startTls = !tls_ && c->offersStartTls();
  bool tlsForAuth = c->hasMechanism(auth_mechanism::kBasicAuthRequireTls) || c->spec.requireTLS;
  a.auth = c->hasMechanism(auth_mechanism::kBasicAuth) && !user_ && (tls_ || !tlsForAuth);
  a.sizeLimit = (rights() & right::kBypassMessageSizeLimit) ? 0 : c->spec.limits.maxMessageSize;
  return a;
}

Decision SessionPolicy::startTls(Trace* trace) const {
  const CompiledConnector* c = selection_.connector;
  if (!c || !connect_.allowed) return connect_;
  if (tls_) return refuse(replies::kTlsAlreadyActive, "already_tls");
  if (!c->offersStartTls()) {
    if (trace) {
      trace->add(Stage::StartTls, "tls-mechanism",
                 "ReceiveConnector " + c->id + " has " +
                     (c->hasMechanism(auth_mechanism::kTls) ? "no usable certificate"
                                                            : "no Tls mechanism"));
    }
    return refuse(replies::kTlsNotAvailable, "tls_not_available");
  }
  return allow(replies::kStartTlsReady, "ok");
}

Decision SessionPolicy::authStart(std::string_view mechanism, Trace* trace) const {
  const CompiledConnector* c = selection_.connector;
  if (!c || !connect_.allowed) return connect_;
  if (user_) return refuse(replies::kAlreadyAuthenticated, "already_authenticated");
  if (!c->hasMechanism(auth_mechanism::kBasicAuth)) {
    if (trace)
      trace->add(Stage::Auth, "auth-mechanism", "ReceiveConnector " + c->id + " has no BasicAuth");
    return refuse(replies::kAuthMechanismUnknown, "mechanism_not_offered");
  }
  if (!iequals(mechanism, "PLAIN") && !iequals(mechanism, "LOGIN")) {
    return refuse(replies::kAuthMechanismUnknown, "unknown_mechanism");
  }
  bool tlsForAuth = c->hasMechanism(auth_mechanism::kBasicAuthRequireTls) || c->spec.requireTLS;
  if (tlsForAuth && !tls_) {
    if (trace) {
      trace->add(Stage::Auth, "basic-auth-require-tls",
                 "ReceiveConnector " + c->id + " accepts passwords only after STARTTLS");
    }
    return refuse(replies::kAuthEncryptionRequired, "encryption_required");
  }
  return allow(Reply{334, "", ""}, "ok");
}

Decision SessionPolicy::authenticated(const UserEntry* user, Trace* trace) {
  const CompiledConnector* c = selection_.connector;
  if (!c || !connect_.allowed) return connect_;
  if (!user) {
    if (trace) trace->add(Stage::Auth, "credentials", "user unknown or password wrong");
    return refuse(replies::kAuthFailed, "bad_credentials");
  }
  Rights r = user->grant.effective();
  if (externallySecured()) r |= c->externallySecured.effective();
  if (!(r & right::kSubmit)) {
    if (trace) {
      trace->add(Stage::Auth, "submit-right",
                 "user " + user->name + " holds no ms-Exch-SMTP-Submit on " + c->id +
                     " (rights: " + rightsToString(r) + ")");
    }
    Decision d = audit(Stage::Auth, refuse(replies::kAuthFailed, "no_submit_right"),
                       replies::kAuthSucceeded, trace);
    if (d.allowed) user_ = user;  // the password was right: only the right is audited
    return d;
  }
  if (trace) {
    trace->add(Stage::Auth, "user-rights",
               "user " + user->name + " holds " + rightsToString(r) + "; Submit from " +
                   user->grant.grantedBy(right::kSubmit));
  }
  user_ = user;
  return allow(replies::kAuthSucceeded, "ok");
}

Decision SessionPolicy::decideMailFrom(const MailAddress& sender,
                                       std::optional<uint64_t> declaredSize, Trace* trace) const {
  const CompiledConnector* c = selection_.connector;
  if (!c || !connect_.allowed) return connect_;
  const bool anonymous = !user_ && !externallySecured();
  if (anonymous && !selection_.inRemoteRange) {
    if (trace) {
      trace->add(Stage::MailFrom, "ip-restriction",
                 "ReceiveConnector " + c->id +
                     " is AnonymousOnly: clients outside remoteIPRanges must authenticate");
    }
    return refuse(replies::kAnonymousOffList, "anonymous_off_list");
  }
  if (c->spec.requireTLS && !tls_) {
    if (trace)
      trace->add(Stage::MailFrom, "require-tls", "ReceiveConnector " + c->id + " has requireTLS");
    return refuse(replies::kMustStartTls, "tls_required");
  }
  const Rights r = rights();
  const Grant& grant = user_ ? user_->grant : baseGrant();
  auto sources = [&](Rights which) { return grant.grantedBy(which); };
  if (!(r & right::kSubmit)) {
    if (trace) {
      trace->add(Stage::MailFrom, "submit-right",
                 principalDescription() + " holds no ms-Exch-SMTP-Submit on " + c->id + " (" +
                     sources(right::kSubmit) + ")");
    }
    return user_ ? refuse(replies::kSubmitDenied, "no_submit_right")
                 : refuse(replies::kNotAuthenticated, "not_authenticated");
  }
  if (declaredSize && *declaredSize > c->spec.limits.maxMessageSize &&
      !(r & right::kBypassMessageSizeLimit)) {
    if (trace) {
      trace->add(Stage::MailFrom, "message-size",
                 "SIZE=" + std::to_string(*declaredSize) + " exceeds maxMessageSize " +
                     formatBytes(c->spec.limits.maxMessageSize));
    }
    return refuse(replies::kMessageTooBig, "size_exceeded");
  }
  if (sender.isNull) return allow(replies::kSenderOk, "null_sender");
  const Reply denied = anonymous ? replies::kAnonymousSendAsDenied : replies::kSendAsDenied;
  auto denySendAs = [&](const std::vector<std::string>& patterns) {
    return matchesAny(patterns, sender);
  };
  if (denySendAs(grant.sendAs.deny) ||
      (user_ && externallySecured() && denySendAs(c->externallySecured.sendAs.deny))) {
    if (trace)
      trace->add(Stage::MailFrom, "send-as-deny",
                 describe(sender) + " is denied by a SenderPermission");
    return refuse(denied, "send_as_denied");
  }
  if (user_ && user_->nameIsAddress && sameAddress(user_->name, sender)) {
    if (trace)
      trace->add(Stage::MailFrom, "own-address", "user " + user_->name + " sends as itself");
    return allow(replies::kSenderOk, "own_address");
  }
  if (matchesAny(grant.sendAs.allow, sender)) {
    if (trace)
      trace->add(Stage::MailFrom, "send-as", describe(sender) + " matches a sendAs pattern");
    return allow(replies::kSenderOk, "send_as");
  }
  auto domain = c->domains->lookup(sender.domain);
  if (domain && domain->type == DomainType::Authoritative) {
    if (r & right::kAcceptAuthoritativeDomainSender) {
      if (trace) {
        trace->add(Stage::MailFrom, "authoritative-domain-sender",
                   describe(sender) + " is in authoritative domain " +
                       std::string(domain->pattern) + " (AcceptedDomain " +
                       std::string(domain->object) +
                       "); ms-Exch-SMTP-Accept-Authoritative-Domain-Sender from " +
                       sources(right::kAcceptAuthoritativeDomainSender));
      }
      return allow(replies::kSenderOk, "authoritative_domain_sender");
    }
    if (trace) {
      trace->add(Stage::MailFrom, "authoritative-domain-sender",
                 describe(sender) + " is in authoritative domain " + std::string(domain->pattern) +
                     " and " + principalDescription() +
                     " lacks ms-Exch-SMTP-Accept-Authoritative-Domain-Sender");
    }
    return refuse(denied, "sender_denied");
  }
  if (r & right::kAcceptAnySender) {
    if (trace) {
      trace->add(Stage::MailFrom, "any-sender",
                 describe(sender) +
                     " is outside the authoritative domains; ms-Exch-SMTP-Accept-Any-Sender from " +
                     sources(right::kAcceptAnySender));
    }
    return allow(replies::kSenderOk, "any_sender");
  }
  if (trace) {
    trace->add(Stage::MailFrom, "any-sender",
               describe(sender) + " is outside the authoritative domains and " +
                   principalDescription() + " lacks ms-Exch-SMTP-Accept-Any-Sender");
  }
  return refuse(denied, "sender_denied");
}

Decision SessionPolicy::decideRcptTo(const MailAddress& recipient, uint32_t acceptedSoFar,
                                     Trace* trace) const {
  const CompiledConnector* c = selection_.connector;
  if (!c || !connect_.allowed) return connect_;
  if (acceptedSoFar >= c->spec.limits.maxRecipientsPerMessage) {
    if (trace) {
      trace->add(
          Stage::RcptTo, "max-recipients",
          "maxRecipientsPerMessage is " + std::to_string(c->spec.limits.maxRecipientsPerMessage));
    }
    return refuse(replies::kTooManyRecipients, "too_many_recipients");
  }
  const Rights r = rights();
  if (recipient.domain.empty() && iequals(recipient.local, "postmaster")) {
    return allow(replies::kRecipientOk, "postmaster");  // RFC 5321 4.5.1
  }
  // "a%b@accepted", "a!b@accepted", "\"a@b\"@accepted": sender-specified routing that a next hop
  // may honour, so it is relaying as far as the policy is concerned (Postfix:
  // allow_untrusted_routing).
  const bool routing = recipient.local.find_first_of("%!@") != std::string_view::npos;
  auto domain = c->domains->lookup(recipient.domain);
  if (domain && !routing) {
    if (trace) {
      trace->add(Stage::RcptTo, "accepted-domain",
                 describe(recipient) + " is in accepted domain " + std::string(domain->pattern) +
                     " (" + toString(domain->type) + ", AcceptedDomain " +
                     std::string(domain->object) + ")");
    }
    return allow(replies::kRecipientOk, "accepted_domain");
  }
  if (r & right::kAcceptAnyRecipient) {
    if (trace) {
      const Grant& grant = user_ ? user_->grant : baseGrant();
      std::string from = grant.grantedBy(right::kAcceptAnyRecipient);
      trace->add(Stage::RcptTo, "accept-any-recipient",
                 describe(recipient) + " is not in an accepted domain; " + principalDescription() +
                     " holds ms-Exch-SMTP-Accept-Any-Recipient from " + from);
    }
    return allow(replies::kRecipientOk, "relay_right");
  }
  if (trace) {
    trace->add(Stage::RcptTo, "accept-any-recipient",
               describe(recipient) +
                   (routing ? " uses sender-specified routing (%, ! or @ in the local part)"
                            : " is not in an accepted domain of namespace " + c->spec.meta.ns) +
                   " and " + principalDescription() + " lacks ms-Exch-SMTP-Accept-Any-Recipient");
  }
  return refuse(replies::kUnableToRelay, routing ? "untrusted_routing" : "relay_denied");
}

Decision SessionPolicy::decideMessageSize(uint64_t bytes, Trace* trace) const {
  const CompiledConnector* c = selection_.connector;
  if (!c || !connect_.allowed) return connect_;
  if (bytes > c->spec.limits.maxMessageSize && !(rights() & right::kBypassMessageSizeLimit)) {
    if (trace) {
      trace->add(Stage::Data, "message-size",
                 std::to_string(bytes) + " bytes exceed maxMessageSize " +
                     formatBytes(c->spec.limits.maxMessageSize));
    }
    return refuse(replies::kMessageTooBig, "size_exceeded");
  }
  return allow(replies::kMessageSizeOk, "ok");
}

Decision SessionPolicy::audit(Stage stage, Decision d, Reply ok, Trace* trace) const {
  const CompiledConnector* c = selection_.connector;
  if (d.allowed || !c || c->spec.enforcement != Enforcement::Audit || !connect_.allowed) return d;
  // Never audited: TLS requirements (auditing them would accept passwords or mail in clear),
  // and anonymous relaying that the policy itself does not allow (audit never opens a relay).
  const bool anonymous = !user_ && !externallySecured();
  if (d.reason == "tls_required" || d.reason == "encryption_required") return d;
  if (stage == Stage::RcptTo && anonymous &&
      (d.reason == "relay_denied" || d.reason == "untrusted_routing")) {
    if (trace) {
      trace->add(stage, "audit",
                 "enforced even in Audit mode: audit never lets an anonymous "
                 "client relay");
    }
    return d;
  }
  if (trace) {
    trace->add(stage, "audit",
               "Audit mode: would refuse with " + d.reply.toString() + "; the session proceeds");
  }
  Decision out{true, ok, "audit_would_refuse"};
  out.audited = true;
  out.wouldRefuse = d.reply;
  out.wouldRefuseReason = d.reason;
  return out;
}

Decision SessionPolicy::mailFrom(const MailAddress& sender, std::optional<uint64_t> declaredSize,
                                 Trace* trace) const {
  return audit(Stage::MailFrom, decideMailFrom(sender, declaredSize, trace), replies::kSenderOk,
               trace);
}

Decision SessionPolicy::rcptTo(const MailAddress& recipient, uint32_t acceptedSoFar,
                               Trace* trace) const {
  Decision d = decideRcptTo(recipient, acceptedSoFar, trace);
  const CompiledConnector* c = selection_.connector;
  if (!d.allowed && d.reason == "too_many_recipients" && c &&
      c->spec.enforcement == Enforcement::Audit) {
    // Audit lets the recipient limit pass, so the relay rules behind it must still be decided:
    // else enough local recipients first would open the relay.
    Decision relay = decideRcptTo(recipient, 0, trace);
    if (!relay.allowed) d = relay;
  }
  return audit(Stage::RcptTo, d, replies::kRecipientOk, trace);
}

Decision SessionPolicy::messageSize(uint64_t bytes, Trace* trace) const {
  return audit(Stage::Data, decideMessageSize(bytes, trace), replies::kMessageSizeOk, trace);
}

}  // namespace kuberelay::policy
