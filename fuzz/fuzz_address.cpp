// libFuzzer: RFC 5321 paths (source routes, quoted local parts, address literals, UTF-8).
#include <cstdint>
#include <string_view>

#include "kuberelay/smtp/address.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  using namespace kuberelay::smtp;
  for (AddressRole role : {AddressRole::Sender, AddressRole::Recipient}) {
    for (bool utf8 : {false, true}) {
      Address a;
      if (!parsePath(text, role, utf8, a)) {
        // A parsed address must be a view into the input.
        if (!a.local.empty() && (a.local.data() < text.data() ||
                                 a.local.data() + a.local.size() > text.data() + text.size())) {
          __builtin_trap();
        }
      }
    }
  }
  (void)pathLength(text);
  (void)isValidUtf8(text);
  return 0;
}
