// NAME
//   policy_bench - decision cost of the policy engine with many connectors
// SYNOPSIS
//   policy_bench [CONNECTORS...]        default: 100 1000 10000
// DESCRIPTION
//   Builds a policy of N receive connectors on one binding, each with its own remote range
//   (a mix of /24 blocks, single addresses and a-b ranges inside 10.0.0.0/8, plus the default
//   0.0.0.0/0 connector), then measures per decision:
//     select   connector selection alone (RangeIndex lookup)
//     session  SessionPolicy::connect + MAIL FROM + RCPT TO (the per-message policy work)
//     linear   the same selection done by scanning every range (the naive reference)
//   and prints ns per operation and the linear/indexed ratio. A benchmark, not a test: run it
//   on a quiet machine (make bench).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "kuberelay/policy/compiler.h"
#include "kuberelay/policy/engine.h"

using namespace kuberelay::policy;
using Clock = std::chrono::steady_clock;

namespace {

ResourceSet makePolicy(uint32_t connectors, std::mt19937& rng) {
  ResourceSet set;
  auto base = [&](const std::string& name) {
    ReceiveConnector rc;
    rc.meta.ns = "bench";
    rc.meta.name = name;
    rc.bindings.push_back(Binding{std::nullopt, 25, false});
    rc.permissionGroups = permission_group::kAnonymousUsers;
    rc.forwarding.smarthosts = {"127.0.0.1:2526"};
    return rc;
  };
  ReceiveConnector def = base("default");
  def.remoteIPRanges = {IpRange::all(IpFamily::V4), IpRange::all(IpFamily::V6)};
  set.connectors.push_back(def);
  // Distinct /24 blocks of 10.0.0.0/8 so that ranges nest or are disjoint, as Exchange requires.
  std::vector<uint32_t> blocks(1u << 16);
  for (uint32_t i = 0; i < blocks.size(); ++i) blocks[i] = 0x0a000000u | (i << 8);
  std::shuffle(blocks.begin(), blocks.end(), rng);
  for (uint32_t i = 1; i < connectors; ++i) {
    ReceiveConnector rc = base("c" + std::to_string(i));
    uint32_t block = blocks[i];
    switch (i % 3) {
      case 0:
        rc.remoteIPRanges = {IpRange{IpAddress::v4(block), IpAddress::v4(block | 0xff)}};
        break;
      case 1:
        rc.remoteIPRanges = {IpRange{IpAddress::v4(block | 7), IpAddress::v4(block | 7)}};
        break;
      default:
        rc.remoteIPRanges = {IpRange{IpAddress::v4(block | 10), IpAddress::v4(block | 99)}};
    }
    set.connectors.push_back(rc);
    if (i % 2 == 0) {
      SenderPermission p;
      p.meta.ns = "bench";
      p.meta.name = "relay" + std::to_string(i);
      p.connector = rc.meta.name;
      p.principal = PrincipalKind::Anonymous;
      p.rights = right::kAcceptAnyRecipient;
      set.permissions.push_back(p);
    }
  }
  AcceptedDomain d;
  d.meta.ns = "bench";
  d.meta.name = "example";
  d.domain = "example.com";
  set.domains.push_back(d);
  return set;
}

double nsPerOp(Clock::duration d, size_t ops) {
  return std::chrono::duration<double, std::nano>(d).count() / static_cast<double>(ops);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<uint32_t> sizes;
  for (int i = 1; i < argc; ++i) sizes.push_back(static_cast<uint32_t>(std::stoul(argv[i])));
  if (sizes.empty()) sizes = {100, 1000, 10000};
  std::printf(
      "| connectors | compile ms | select ns | session ns (connect+MAIL+RCPT) | linear select ns | "
      "linear/indexed |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|\n");
  for (uint32_t n : sizes) {
    if (n > 65536) {
      std::fprintf(stderr, "at most 65536 connectors (one /24 of 10.0.0.0/8 each)\n");
      return 2;
    }
    std::mt19937 rng(n);
    ResourceSet set = makePolicy(n, rng);
    auto t0 = Clock::now();
    CompileResult result = compile(set, {"", false});
    double compileMs = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    SnapshotPtr snap = result.snapshot;

    // Clients: mostly inside some connector's range, some falling to the default.
    std::vector<ConnectionFacts> clients;
    std::uniform_int_distribution<uint32_t> any(0x0a000000u, 0x0affffffu);
    for (int i = 0; i < 4096; ++i) {
      clients.push_back({IpAddress::v4(0), 25, IpAddress::v4(any(rng))});
    }
    const size_t iterations = 2'000'000;
    uintptr_t sink = 0;

    auto t1 = Clock::now();
    for (size_t i = 0; i < iterations; ++i) {
      sink += reinterpret_cast<uintptr_t>(snap->select(clients[i & 4095]).connector);
    }
    double selectNs = nsPerOp(Clock::now() - t1, iterations);

    const MailAddress sender = MailAddress::split("<app@example.com>");
    const MailAddress rcpt = MailAddress::split("<someone@customer.test>");
    auto t2 = Clock::now();
    for (size_t i = 0; i < iterations; ++i) {
      auto session = SessionPolicy::connect(snap, clients[i & 4095]);
      sink += session.mailFrom(sender, std::nullopt).allowed;
      sink += session.rcptTo(rcpt, 0).allowed;
    }
    double sessionNs = nsPerOp(Clock::now() - t2, iterations);

    // Naive reference: scan every connector's ranges for the smallest containing one.
    const auto connectors = snap->connectors();
    const size_t linearIterations = n >= 10000 ? 20000 : 200000;
    auto t3 = Clock::now();
    for (size_t i = 0; i < linearIterations; ++i) {
      const IpAddress& a = clients[i & 4095].remoteAddress;
      const CompiledConnector* best = nullptr;
      U128 bestSpan{~0ull, ~0ull};
      for (const auto& c : connectors) {
        for (const auto& r : c.spec.remoteIPRanges) {
          if (r.contains(a) && r.span() < bestSpan) {
            best = &c;
            bestSpan = r.span();
          }
        }
      }
      sink += reinterpret_cast<uintptr_t>(best);
    }
    double linearNs = nsPerOp(Clock::now() - t3, linearIterations);
    std::printf("| %u | %.1f | %.1f | %.1f | %.1f | %.0fx |\n", n, compileMs, selectNs, sessionNs,
                linearNs, linearNs / selectNs);
    if (sink == 42) std::printf("\n");  // keep the loops observable
  }
  return 0;
}
