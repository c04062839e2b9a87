// libFuzzer: PROXY protocol v1 and v2 headers.
#include <cstdint>
#include <string_view>

#include "proxy_protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto p = kuberelay::relay::parseProxyHeader(in);
  if (p.status == kuberelay::relay::ProxyStatus::Complete && p.consumed > in.size())
    __builtin_trap();
  (void)kuberelay::relay::startsLikeProxyHeader(in);
  return 0;
}
