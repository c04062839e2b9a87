// NAME
//   compiler.h - API objects in, immutable Snapshot and diagnostics out
// DESCRIPTION
//   compile() validates every object (the CRD's CEL rules again, plus what a schema cannot
//   see: references, Secret contents, binding conflicts), expands permission groups and
//   SenderPermissions into each principal's rights, and builds the selection index.
//   One bad object never takes the rest down:
//   - an invalid ReceiveConnector keeps its bindings and ranges but is quarantined: clients it
//     would have served get 421 4.3.5 (fail closed, temporarily) instead of falling through to
//     a broader connector;
//   - an invalid SenderPermission is left out, unless it is a deny entry, whose connector is
//     then quarantined (leaving out a deny would widen access);
//   - an invalid AcceptedDomain is left out; bad lines of a users Secret are skipped.
//   The analyzer's warnings (analyzer.h) are appended to the diagnostics.
#pragma once

#include <string>
#include <vector>

#include "kuberelay/policy/diagnostic.h"
#include "kuberelay/policy/model.h"
#include "kuberelay/policy/snapshot.h"

namespace kuberelay::policy {

struct CompileOptions {
  std::string relayPool;  // only this pool's connectors; empty = every pool
  bool analyze = true;
};

struct CompileResult {
  SnapshotPtr snapshot;
  std::vector<Diagnostic> diagnostics;  // decode errors, compile errors, analyzer warnings
  size_t errorCount() const;
  size_t warningCount() const;
};

CompileResult compile(const ResourceSet& resources, const CompileOptions& options = {});

// Parses a users Secret value: lines "name:crypt-hash[:group1,group2]"; '#' comments and
// blank lines are skipped. Errors name the line ("line 3: ...").
struct ParsedUsers {
  std::vector<UserEntry> users;
  std::vector<std::string> errors;
};
ParsedUsers parseUsersSecret(std::string_view text);

}  // namespace kuberelay::policy
