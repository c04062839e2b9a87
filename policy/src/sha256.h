// SHA-256 (FIPS 180-4), for content-addressed snapshot versions. Not for secrets.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace kuberelay::policy {

std::array<uint8_t, 32> sha256(std::string_view data);
std::string sha256Hex(std::string_view data);

}  // namespace kuberelay::policy
