// NAME
//   refusals.h - the last refused sessions, for "why was this client refused?" on the admin port
// DESCRIPTION
//   Each policy refusal is kept as what the policy saw (client, local address and port, TLS,
//   authenticated user, MAIL FROM, recipients, size) with the snapshot that decided it. The
//   decision trace is computed only when /refusals is read (explainSession on that snapshot),
//   so recording costs a few small copies and the data path never traces. Nothing secret is
//   kept: no password (an authenticated user is replayed as authenticated) and no content.
//   Bounded: the oldest entry goes when the ring is full. Used from the io thread only.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <string>

#include "kuberelay/policy/explain.h"

namespace kuberelay::relay {

struct Refusal {
  std::chrono::system_clock::time_point time;
  std::string session;
  std::string connector;
  std::string stage;
  std::string reply;
  std::string reason;
  std::string principal;
  policy::ExplainRequest request;  // the session as the policy saw it (never a password)
  policy::SnapshotPtr snapshot;    // the policy that refused it
};

class RecentRefusals {
public:
  explicit RecentRefusals(size_t capacity = 100) : capacity_(capacity) {}
  void add(Refusal refusal);
  // {"refusals": [...]}, newest first, each with its explanation against its own snapshot.
  std::string toJson(size_t limit) const;
  size_t size() const { return ring_.size(); }

private:
  size_t capacity_;
  std::deque<Refusal> ring_;
};

}  // namespace kuberelay::relay
