// Helpers shared by the policy tests: load example folders and inline manifests.
#pragma once

#include <string>
#include <string_view>

#include "kuberelay/policy/compiler.h"
#include "kuberelay/policy/engine.h"
#include "kuberelay/policy/manifest.h"

namespace kuberelay::policy::testing {

std::string sourcePath(std::string_view relative);
CompileResult compileExample(std::string_view folder);  // "examples/003-..."
CompileResult compileYaml(std::string_view yaml);
ResourceSet decodeYaml(std::string_view yaml);
IpAddress ip(std::string_view text);
// Errors only, as "Kind ns/name: field: message" lines.
std::vector<std::string> errorsOf(const CompileResult& result);
std::vector<std::string> warningReasons(const CompileResult& result, std::string_view connector);

}  // namespace kuberelay::policy::testing
