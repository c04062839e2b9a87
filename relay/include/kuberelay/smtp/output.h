// NAME
//   output.h - what the SMTP session asks its caller to do: replies, TLS, closing, forwarding
// SYNOPSIS
//   Output out;
//   session.receive(bytes, out);
//   for (const Action& a : out.actions()) {
//     if (auto* r = std::get_if<action::Reply>(&a)) write(out.text(*r));
//     else if (std::holds_alternative<action::Close>(a)) ...
//   }
//   out.clear();   // keeps its capacity: steady state allocates nothing
// DESCRIPTION
//   The session is pure; everything with an effect is an Action, in the order it must happen:
//   a Tarpit comes before the reply it delays, StartTls after the 220 that announces it, Close
//   last. Reply text lives in one buffer inside the Output (replies to a pipelined group can be
//   written with one send: text() of consecutive replies is contiguous).
//   Views held by actions (body chunks, credentials, event texts) stay valid until the next call
//   on the Session, or until the caller changes the buffer it passed to Session::receive(),
//   whichever comes first. Envelope addresses are owned by their actions (one small string per
//   MAIL or RCPT): without a next hop to wait for, one read can hold many of them.
//   Forwarding actions (BeginTransaction, AddRecipient, BeginData, EndOfData) each wait for
//   Session::onForwardReply() when the session forwards in-line; BodyChunk and
//   ResetTransaction never wait. An action the session waits for (those, VerifyCredentials,
//   StartTls) is always the last action of its Output.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "kuberelay/policy/engine.h"
#include "kuberelay/policy/model.h"
#include "kuberelay/smtp/command.h"

namespace kuberelay::smtp {

// Where a decision was taken (label values for metrics; see toString).
enum class EventStage : uint8_t { Connect, Ehlo, StartTls, Auth, Mail, Rcpt, Data, Protocol };
const char* toString(EventStage stage);

namespace action {
// Octets to send: one reply, possibly multi-line, CRLF-terminated. Text via Output::text().
struct Reply {
  uint32_t offset = 0;
  uint32_t size = 0;
  uint16_t code = 0;
};
// Start the TLS handshake now. Every byte already read after the STARTTLS line must be
// discarded (CVE-2011-0411); then call Session::onTlsEstablished().
struct StartTls {};
// Close the connection once the preceding replies are written.
struct Close {};
// Wait this long before writing the next reply (Exchange's tarpit, before 5xx replies).
struct Tarpit {
  policy::Millis delay;
};
// Check this password (crypt is slow: off the I/O thread), then call Session::onCredentials().
// Never log the password.
struct VerifyCredentials {
  std::string_view user;
  std::string_view password;
};
// MAIL FROM for the next hop. `sender` is "local@domain", "" for the null reverse-path.
struct BeginTransaction {
  std::string sender;
  MailParameters params;
};
struct AddRecipient {
  std::string recipient;
};
// The client sent DATA (chunking = false) or its first BDAT (chunking = true). A positive
// next-hop verdict lets the session read the content.
struct BeginData {
  bool chunking = false;
};
// Decoded message content (unstuffed, CRLF line endings), in order.
struct BodyChunk {
  std::string_view bytes;
};
// The content is complete and passed every local check: commit it at the next hop.
struct EndOfData {
  uint64_t size = 0;
};
// Drop whatever the next hop holds of the current transaction (RSET, or close the next-hop
// connection if it is inside DATA). Nothing of it may be delivered.
struct ResetTransaction {};
// A command line as the client sent it, for the protocol log; AUTH secrets are masked and DATA
// content never appears. Only emitted when SessionConfig::protocolLog is set.
struct ClientLine {
  std::string_view text;
};
// A decision, for metrics and logs (counters by stage and reason; never parse reply text).
struct Event {
  EventStage stage;
  policy::Decision decision;
  // What the policy decided on, for the record of refused sessions: the address of MAIL FROM
  // and RCPT TO, the size at end of data; empty otherwise.
  std::string input;
  // False for the session's own protocol refusals (syntax, sequence, limits), which are not
  // the policy's and which explain cannot replay.
  bool fromPolicy = true;
};
}  // namespace action

using Action =
    std::variant<action::Reply, action::StartTls, action::Close, action::Tarpit,
                 action::VerifyCredentials, action::BeginTransaction, action::AddRecipient,
                 action::BeginData, action::BodyChunk, action::EndOfData, action::ResetTransaction,
                 action::ClientLine, action::Event>;

class Output {
public:
  const std::vector<Action>& actions() const { return actions_; }
  std::string_view text(const action::Reply& reply) const {
    return std::string_view(text_).substr(reply.offset, reply.size);
  }
  // Every reply octet appended since clear(), in order.
  std::string_view replyText() const { return text_; }
  bool empty() const { return actions_.empty(); }
  void clear() {
    actions_.clear();
    text_.clear();
  }

  // Building, for the session.
  void push(Action action) { actions_.push_back(std::move(action)); }
  // Appends one reply line; the reply is complete (and becomes an action) with last = true.
  // Control characters in the text become spaces: a reply is always exactly its lines.
  void replyLine(const policy::Reply& reply, bool last);
  void reply(const policy::Reply& reply) { replyLine(reply, true); }

private:
  std::vector<Action> actions_;
  std::string text_;
  size_t replyStart_ = 0;
  bool replyOpen_ = false;
};

}  // namespace kuberelay::smtp
