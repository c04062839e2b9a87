// libFuzzer: remoteIPRanges items; a parsed range must round-trip through its text.
#include <cstdint>
#include <string_view>

#include "kuberelay/policy/ip.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kuberelay::policy;
  auto r = parseIpRange(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!r.range) return 0;
  auto again = parseIpRange(r.range->toString());
  if (!again.range || !(*again.range == *r.range)) __builtin_trap();
  (void)toCidrs(*r.range);
  return 0;
}
