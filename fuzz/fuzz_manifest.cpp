// libFuzzer: YAML/JSON manifests through the decoder and the compiler (analyzer included).
#include <cstdint>
#include <string_view>

#include "kuberelay/policy/compiler.h"
#include "kuberelay/policy/manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 64 * 1024) return 0;
  kuberelay::policy::ResourceSet set;
  kuberelay::policy::decodeManifests(std::string_view(reinterpret_cast<const char*>(data), size),
                                     "fuzz.yaml", set);
  auto result = kuberelay::policy::compile(set);
  (void)result.snapshot->render();
  return 0;
}
