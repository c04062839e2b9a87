// NAME
//   transcript.h - run a client script against a Session and render what the server did
// SYNOPSIS
//   Harness h("examples/003-anonymous-relay-ip-restricted", "127.0.0.17", 2525);
//   EXPECT_TRANSCRIPT(h, {send("EHLO c\r\nQUIT\r\n")}, R"(
//   S: 220 ...
//   ...)");
// DESCRIPTION
//   The harness plays the relay's I/O layer: it verifies credentials with the real
//   verifyCredentials(), answers forwarding actions as a scripted next hop, performs
//   "TLS" at the script's tls() steps, and discards the rest of a read after StartTls as the
//   real caller must. Every script runs fed in one piece per step, byte by byte, and in
//   random splits; all runs must render the same transcript.
//   Lines: "S: reply line", "T: tarpit", "X: STARTTLS|CLOSE", "A: VERIFY user",
//   "F: MAIL/RCPT/DATA/BDAT/body/END/RESET" (the forwarder's view), "E: events" (optional).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kuberelay/policy/snapshot.h"
#include "kuberelay/smtp/session.h"

namespace kuberelay::smtp::testing {

struct Step {
  bool tls = false;   // the TLS handshake completes here
  std::string bytes;  // else: client octets
};
inline Step send(std::string bytes) { return Step{false, std::move(bytes)}; }
inline Step tls() { return Step{true, {}}; }

enum class Split : uint8_t { Whole, Bytes, Random };

struct RenderOptions {
  bool tarpits = true;
  bool forwarding = true;
  bool events = false;
};

// The scripted next hop: the reply to each forwarding action.
struct NextHop {
  policy::Reply mail{250, "2.1.0", "Sender OK"};
  policy::Reply rcpt{250, "2.1.5", "Recipient OK"};
  policy::Reply data{354, "", "Start mail input"};
  policy::Reply end{250, "2.6.0", "<id@next-hop> Queued mail for delivery"};
  // Per recipient, when set: returns nullopt to use `rcpt`.
  std::function<std::optional<policy::Reply>(std::string_view recipient)> rcptFor;
};

policy::SnapshotPtr exampleSnapshot(std::string_view folder);  // compiled once per folder

class Harness {
public:
  Harness(std::string_view folder, std::string_view client, uint16_t port,
          SessionConfig config = {});

  SessionConfig config;
  NextHop nextHop;
  RenderOptions render;
  size_t randomRuns = 8;
  bool byteRuns = true;

  std::string run(const std::vector<Step>& script, Split split, unsigned seed = 0) const;

  // Every split gives `expected` (leading newline and indentation-free lines).
  void expect(const std::vector<Step>& script, std::string_view expected) const;

private:
  policy::SnapshotPtr snapshot_;
  std::string client_;
  uint16_t port_;
};

// Trims one leading newline, so that raw string literals can start on their own line.
std::string transcript(std::string_view text);

}  // namespace kuberelay::smtp::testing
