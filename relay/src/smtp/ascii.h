// The shared ASCII helpers, in the SMTP layer's namespace.
#pragma once

#include "kuberelay/policy/ascii.h"

namespace kuberelay::smtp {
using namespace kuberelay::ascii;  // NOLINT(google-build-using-namespace): private header
}  // namespace kuberelay::smtp
