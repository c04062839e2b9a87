#include "kuberelay/policy/analyzer.h"

#include <algorithm>
#include <map>

namespace kuberelay::policy {
namespace {

// Ports of client-submission connectors: 587 and 465, and the unprivileged ports the Helm
// chart maps them to.
bool isSubmissionPort(uint16_t port) {
  return port == 587 || port == 465 || port == 2587 || port == 2465;
}

// True when the union of `ranges` covers every address of `family`.
bool coversFamily(const std::vector<IpRange>& ranges, IpFamily family) {
  std::vector<IpRange> list;
  for (const auto& r : ranges) {
    if (r.first.family() == family) list.push_back(r);
  }
  if (list.empty()) return false;
  std::sort(list.begin(), list.end());
  const IpRange all = IpRange::all(family);
  if (list.front().first != all.first) return false;
  U128 reach = list.front().last.value();
  for (const auto& r : list) {
    U128 start = r.first.value();
    // Gap if start > reach + 1.
    U128 next = reach;
    if (++next.lo == 0) ++next.hi;
    if (reach != all.last.value() && start > next) return false;
    if (r.last.value() > reach) reach = r.last.value();
  }
  return reach == all.last.value();
}

std::string rangesText(const std::vector<IpRange>& ranges) {
  std::string out;
  for (const auto& r : ranges) out += (out.empty() ? "" : ", ") + r.toString();
  return out;
}

}  // namespace

std::vector<Diagnostic> analyze(const Snapshot& snapshot) {
  std::vector<Diagnostic> out;
  auto warn = [&](const CompiledConnector& c, std::string field, std::string reason,
                  std::string message) {
    const ObjectMeta& m = c.spec.meta;
    out.push_back({Diagnostic::Severity::Warning,
                   {"ReceiveConnector", m.ns, m.name, m.source},
                   std::move(field),
                   std::move(reason),
                   std::move(message)});
  };

  for (const auto& c : snapshot.connectors()) {
    if (!c.spec.enabled || c.quarantined) continue;
    const auto& ranges = c.spec.remoteIPRanges;
    const bool everywhere =
        coversFamily(ranges, IpFamily::V4) || coversFamily(ranges, IpFamily::V6);
    const Rights anon = c.anonymous.effective();
    const Rights ext = c.hasMechanism(auth_mechanism::kExternalAuthoritative)
                           ? c.externallySecured.effective()
                           : 0;
    auto relays = [](Rights r) { return (r & right::kSubmit) && (r & right::kAcceptAnyRecipient); };
    if (everywhere && (relays(anon) || relays(ext))) {
      warn(c, "spec.remoteIPRanges", "OpenRelay",
           std::string(relays(anon) ? "anonymous" : "externally secured") +
               " clients may relay to any domain and remoteIPRanges (" + rangesText(ranges) +
               ") admit every address: this is an open relay");
    }
    if (c.hasMechanism(auth_mechanism::kBasicAuth) &&
        !c.hasMechanism(auth_mechanism::kBasicAuthRequireTls) && !c.spec.tlsImplicit &&
        !c.spec.requireTLS) {
      warn(c, "spec.authMechanisms", "BasicAuthWithoutTls",
           "BasicAuth without BasicAuthRequireTLS accepts passwords in clear text; add "
           "BasicAuthRequireTLS");
    }
    const bool submission = std::any_of(c.spec.bindings.begin(), c.spec.bindings.end(),
                                        [](const Binding& b) { return isSubmissionPort(b.port); });
    if (submission && (anon & right::kSubmit)) {
      warn(c, "spec.permissionGroups", "AnonymousOnSubmissionConnector",
           "anonymous clients may submit on a client-submission port; clients of a dedicated "
           "submission connector authenticate, so remove anonymous access");
    }
    // Under AnonymousOnly, remoteIPRanges is the administrator's explicit list of anonymous
    // clients beside authenticated servers (seed 004's design), so that is not flagged.
    const bool internal =
        c.hasGroup(permission_group::kExchangeServers | permission_group::kExchangeLegacyServers) &&
        !c.hasMechanism(auth_mechanism::kExternalAuthoritative) &&
        c.spec.ipRestrictionMode == IpRestrictionMode::AllClients;
    if (internal && (anon & right::kSubmit)) {
      warn(c, "spec.permissionGroups", "AnonymousOnInternalConnector",
           "anonymous clients may submit on a connector for Exchange servers; servers "
           "authenticate to each other, so remove anonymous access (keep it only on "
           "Internet-facing connectors)");
    }
    if (c.hasMechanism(auth_mechanism::kExternalAuthoritative)) {
      for (const auto& r : ranges) {
        U128 span = r.span();
        bool wide = r.first.isV4() ? span.lo > 255 : span.hi != 0;
        if (wide) {
          warn(c, "spec.remoteIPRanges", "ExternalAuthoritativeWideRange",
               "ExternalAuthoritative trusts every client in " + r.toString() +
                   " as an internal server (bypassing size limits and relay checks); list the "
                   "peer servers, not a network wider than /24 (IPv4) or /64 (IPv6)");
          break;
        }
      }
    }
    bool anyoneSubmits = (anon & right::kSubmit) || (ext & right::kSubmit);
    for (const auto& u : c.users)
      anyoneSubmits = anyoneSubmits || (u.grant.effective() & right::kSubmit);
    if (!anyoneSubmits) {
      warn(c, "spec.permissionGroups", "NoSubmitRight",
           "no principal holds ms-Exch-SMTP-Submit on this connector, so it accepts no mail");
    }
    if (!c.spec.usersSecretName.empty() && !c.hasMechanism(auth_mechanism::kBasicAuth)) {
      warn(c, "spec.users", "UsersWithoutBasicAuth",
           "a users Secret is set but BasicAuth is not enabled, so nobody can authenticate");
    }
  }

  // Ranges on one binding must nest (Exchange refuses partial overlaps), and two connectors with
  // the same binding and the same ranges are ambiguous.
  struct Item {
    IpRange range;
    const CompiledConnector* connector;
  };
  std::map<Binding, std::vector<Item>> byBinding;
  std::map<std::pair<Binding, std::vector<IpRange>>, const CompiledConnector*> seen;
  for (const auto& c : snapshot.connectors()) {
    if (!c.spec.enabled) continue;
    std::vector<IpRange> sorted = c.spec.remoteIPRanges;
    std::sort(sorted.begin(), sorted.end());
    for (const auto& b : c.spec.bindings) {
      Binding key = b;
      key.anyV6 = false;  // 0.0.0.0 and [::] select alike
      for (const auto& r : sorted) byBinding[key].push_back({r, &c});
      auto [it, inserted] = seen.emplace(std::make_pair(key, sorted), &c);
      if (!inserted) {
        warn(c, "spec.bindings", "DuplicateConnector",
             "binding " + b.toString() + " with the same remoteIPRanges as ReceiveConnector " +
                 it->second->id + "; which one serves a client is decided by name only");
      }
    }
  }
  for (auto& [binding, items] : byBinding) {
    std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
      if (a.range.first != b.range.first) return a.range.first < b.range.first;
      return a.range.last > b.range.last;  // containers first
    });
    std::vector<const Item*> open;
    std::map<std::pair<uint32_t, uint32_t>, bool> reported;
    for (const auto& item : items) {
      while (!open.empty() && (open.back()->range.first.family() != item.range.first.family() ||
                               open.back()->range.last < item.range.first)) {
        open.pop_back();
      }
      if (!open.empty() && item.range.last > open.back()->range.last &&
          open.back()->connector != item.connector) {
        auto key = std::make_pair(open.back()->connector->index, item.connector->index);
        if (!reported[key]) {
          reported[key] = true;
          warn(*item.connector, "spec.remoteIPRanges", "PartiallyOverlappingRanges",
               item.range.toString() + " overlaps " + open.back()->range.toString() +
                   " of ReceiveConnector " + open.back()->connector->id + " on " +
                   binding.toString() +
                   " without one containing the other (Exchange refuses this); make the ranges "
                   "nest");
        }
      }
      open.push_back(&item);
    }
  }
  return out;
}

}  // namespace kuberelay::policy
