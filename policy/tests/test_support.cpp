#include "test_support.h"

#include <stdexcept>

namespace kuberelay::policy::testing {

std::string sourcePath(std::string_view relative) {
  return std::string(KUBERELAY_SOURCE_DIR) + "/" + std::string(relative);
}

CompileResult compileExample(std::string_view folder) {
  return compile(loadManifestDirectory(sourcePath(folder)));
}

ResourceSet decodeYaml(std::string_view yaml) {
  ResourceSet set;
  decodeManifests(yaml, "test.yaml", set);
  return set;
}

CompileResult compileYaml(std::string_view yaml) { return compile(decodeYaml(yaml)); }

IpAddress ip(std::string_view text) {
  auto a = IpAddress::parse(text);
  if (!a) throw std::invalid_argument("bad test address " + std::string(text));
  return *a;
}

std::vector<std::string> errorsOf(const CompileResult& result) {
  std::vector<std::string> out;
  for (const auto& d : result.diagnostics) {
    if (d.isError()) out.push_back(d.toString());
  }
  return out;
}

std::vector<std::string> warningReasons(const CompileResult& result, std::string_view connector) {
  std::vector<std::string> out;
  for (const auto& d : result.diagnostics) {
    if (!d.isError() && d.object.name == connector) out.push_back(d.reason);
  }
  return out;
}

}  // namespace kuberelay::policy::testing
