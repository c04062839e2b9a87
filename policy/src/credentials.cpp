#include "kuberelay/policy/credentials.h"

#include <crypt.h>

#include <cstring>
#include <memory>
#include <string>

namespace kuberelay::policy {
namespace {

// A real $6$ hash of a random string nobody knows; used to spend the same time on unknown
// users as on known ones.
constexpr const char* kDummyHash =
    "$6$kuberelaydummy$3wY7QkaSgimM2o1FuVLYlGImMFzM9jxw64PO/EbXXw3Ja6xr/"
    "pBUhFWRyagFZ0kmSksmfPgPx3FvovoHhl6Iw1";

bool constantTimeEquals(const char* a, size_t aLen, const char* b, size_t bLen) {
  unsigned char diff = static_cast<unsigned char>(aLen != bLen);
  size_t n = aLen < bLen ? aLen : bLen;
  for (size_t i = 0; i < n; ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace

bool verifyPassword(std::string_view cryptHash, std::string_view password) {
  // crypt_rn needs NUL-terminated input; a password with a NUL byte can never match.
  if (password.find('\0') != std::string_view::npos) return false;
  std::string hash(cryptHash), pass(password);
  auto data = std::make_unique<crypt_data>();
  std::memset(data.get(), 0, sizeof(crypt_data));
  const char* out = crypt_rn(pass.c_str(), hash.c_str(), data.get(), sizeof(crypt_data));
  if (out == nullptr || out[0] == '*') return false;
  return constantTimeEquals(out, std::strlen(out), hash.data(), hash.size());
}

const UserEntry* verifyCredentials(const CompiledConnector& connector, std::string_view user,
                                   std::string_view password) {
  const UserEntry* entry = connector.findUser(user);
  if (entry == nullptr) {
    verifyPassword(kDummyHash, password);
    return nullptr;
  }
  return verifyPassword(entry->hash, password) ? entry : nullptr;
}

}  // namespace kuberelay::policy
