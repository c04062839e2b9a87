// NAME
//   credentials.h - verify a password against a users-Secret entry (crypt(3))
// DESCRIPTION
//   Supports what libxcrypt supports: $6$ (SHA-512), $y$ (yescrypt), $2b$ (bcrypt), $5$.
//   An unknown user costs the same as a wrong password: the password is hashed against a
//   dummy entry of the same scheme, and results are compared in constant time, so timing does
//   not reveal which user names exist.
#pragma once

#include <string_view>

#include "kuberelay/policy/snapshot.h"

namespace kuberelay::policy {

// Looks the user up on the connector and verifies the password. Returns the entry on success,
// nullptr otherwise (unknown user, wrong password, or a hash libcrypt cannot use).
const UserEntry* verifyCredentials(const CompiledConnector& connector, std::string_view user,
                                   std::string_view password);

bool verifyPassword(std::string_view cryptHash, std::string_view password);

}  // namespace kuberelay::policy
