// NAME
//   manifest.h - read API objects from YAML or JSON manifests
// DESCRIPTION
//   Accepts multi-document YAML, JSON (a single object or a kind: List), the three KubeRelay
//   kinds and Secrets. Other kinds (Namespace, ...) are ignored. Every error names the object
//   and the field path; an object with an error is still returned, marked invalid, with the
//   parts that could be read. This is the edge where YAML is parsed (libyaml); the rest of the
//   policy library does not see it.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "kuberelay/policy/model.h"

namespace kuberelay::policy {

struct ManifestOptions {
  std::string defaultNamespace = "default";
};

// Decodes every document of `text` into `out` (appending). `source` names it in diagnostics.
void decodeManifests(std::string_view text, std::string_view source, ResourceSet& out,
                     const ManifestOptions& options = {});

// True when a whole file or document could not be read (YAML syntax, not an object, unreadable
// directory): its objects are missing from the set, so a reloader must keep the last good
// policy instead of applying this one. Errors inside an object are not counted here: the
// compiler quarantines that object and the rest applies.
bool hasUnreadableManifests(const ResourceSet& set);

// Reads every *.yaml, *.yml and *.json file directly in `dir` (not recursive), in name order.
ResourceSet loadManifestDirectory(const std::filesystem::path& dir,
                                  const ManifestOptions& options = {});

}  // namespace kuberelay::policy
