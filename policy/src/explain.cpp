#include "kuberelay/policy/explain.h"

#include <cstdio>

#include "kuberelay/policy/credentials.h"

namespace kuberelay::policy {

std::string jsonString(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

ExplainResult explainSession(const SnapshotPtr& snapshot, const ExplainRequest& req) {
  ExplainResult out;
  out.policyVersion = snapshot ? snapshot->version() : "";
  Trace trace;
  auto record = [&](std::string stage, std::string input, const Decision& d) {
    ExplainStage s;
    s.stage = std::move(stage);
    s.input = std::move(input);
    s.allowed = d.allowed;
    s.reply = d.reply.toString();
    s.reason = std::string(d.reason);
    if (d.audited) s.auditWouldRefuse = d.wouldRefuse.toString();
    s.trace = std::move(trace.steps);
    trace.steps.clear();
    out.stages.push_back(std::move(s));
    return d.allowed;
  };
  SessionPolicy session =
      SessionPolicy::connect(snapshot, {req.toAddress, req.toPort, req.from}, &trace);
  out.connector = session.connector() ? session.connector()->id : "";
  bool ok = record(
      "connect",
      req.from.toString() + " -> " + req.toAddress.toString() + ":" + std::to_string(req.toPort),
      session.connectDecision());
  if (ok && req.tls) {
    ok = record("starttls", "", session.startTls(&trace));
    if (ok) session.tlsEstablished();
  }
  if (ok && req.user) {
    Decision start = session.authStart("PLAIN", &trace);
    if (!start.allowed) {
      ok = record("auth", *req.user, start);
    } else {
      // Without a password: what happens once this user has authenticated.
      const UserEntry* entry =
          req.password ? verifyCredentials(*session.connector(), *req.user, *req.password)
                       : session.connector()->findUser(*req.user);
      ok = record("auth", *req.user, session.authenticated(entry, &trace));
    }
  }
  if (ok && req.mail) {
    ok = record("mail", *req.mail,
                session.mailFrom(MailAddress::split(*req.mail), req.size, &trace));
  }
  uint32_t accepted = 0;
  for (const auto& r : req.rcpts) {
    if (!ok) break;
    Decision d = session.rcptTo(MailAddress::split(r), accepted, &trace);
    if (d.allowed) ++accepted;
    ok = record("rcpt", r, d);
  }
  if (ok && req.dataBytes) {
    ok = record("data", std::to_string(*req.dataBytes) + " bytes",
                session.messageSize(*req.dataBytes, &trace));
  }
  out.allowed = ok;
  return out;
}

std::string ExplainResult::toJson() const {
  std::string j = "{\n  \"policyVersion\": " + jsonString(policyVersion) +
                  ",\n  \"connector\": " + jsonString(connector) +
                  ",\n  \"allowed\": " + (allowed ? "true" : "false") + ",\n  \"stages\": [";
  for (size_t i = 0; i < stages.size(); ++i) {
    const auto& s = stages[i];
    j += std::string(i ? "," : "") + "\n    {\"stage\": " + jsonString(s.stage) +
         ", \"input\": " + jsonString(s.input) +
         ", \"allowed\": " + (s.allowed ? "true" : "false") +
         ", \"reply\": " + jsonString(s.reply) + ", \"reason\": " + jsonString(s.reason);
    if (!s.auditWouldRefuse.empty())
      j += ", \"auditWouldRefuse\": " + jsonString(s.auditWouldRefuse);
    j += ", \"trace\": [";
    for (size_t t = 0; t < s.trace.size(); ++t) {
      j += std::string(t ? ", " : "") + "{\"rule\": " + jsonString(s.trace[t].rule) +
           ", \"detail\": " + jsonString(s.trace[t].detail) + "}";
    }
    j += "]}";
  }
  return j + "\n  ]\n}\n";
}

std::string ExplainResult::toText() const {
  std::string t = "policy " + policyVersion + "\n";
  for (const auto& s : stages) {
    t += s.stage + (s.input.empty() ? "" : " " + s.input) + "\n  " +
         (s.allowed ? "allowed" : "REFUSED") + ": " + s.reply + " [" + s.reason + "]\n";
    if (!s.auditWouldRefuse.empty()) t += "  audit: would refuse with " + s.auditWouldRefuse + "\n";
    for (const auto& step : s.trace) t += "  why (" + step.rule + "): " + step.detail + "\n";
  }
  t += allowed ? "result: allowed\n" : "result: refused at " + stages.back().stage + "\n";
  return t;
}

}  // namespace kuberelay::policy
