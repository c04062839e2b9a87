// NAME
//   analyzer.h - warnings in the spirit of the Exchange Server Analyzer (seed 002)
// DESCRIPTION
//   Each finding is a Warning diagnostic on a ReceiveConnector whose `reason` is the condition
//   type the operator sets (CamelCase):
//   OpenRelay                        anonymous (or externally secured) relay reachable from every
//                                    IPv4 or every IPv6 address
//   BasicAuthWithoutTls              passwords accepted before TLS
//   AnonymousOnSubmissionConnector   anonymous submission on a client-submission connector
//   AnonymousOnInternalConnector     anonymous submission on a connector for Exchange servers
//   ExternalAuthoritativeWideRange   externally secured trust granted to a range wider than /24
//                                    (IPv4) or /64 (IPv6)
//   PartiallyOverlappingRanges       remote ranges on one binding overlap without nesting
//                                    (Exchange refuses them)
//   DuplicateConnector               same binding and same remote ranges as another connector
//   NoSubmitRight                    nobody can submit through the connector
//   UsersWithoutBasicAuth            a users Secret but no BasicAuth mechanism
#pragma once

#include <vector>

#include "kuberelay/policy/diagnostic.h"
#include "kuberelay/policy/snapshot.h"

namespace kuberelay::policy {

std::vector<Diagnostic> analyze(const Snapshot& snapshot);

}  // namespace kuberelay::policy
