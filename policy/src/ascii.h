// The shared ASCII helpers, in the policy library's namespace.
#pragma once

#include "kuberelay/policy/ascii.h"

namespace kuberelay::policy {
using namespace kuberelay::ascii;  // NOLINT(google-build-using-namespace): private header
}  // namespace kuberelay::policy
