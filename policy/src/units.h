// Kubernetes quantities ("36Mi", "25M", "1048576") and Go durations ("10m", "1h30m", "500ms").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "kuberelay/policy/model.h"

namespace kuberelay::policy {

std::optional<uint64_t> parseQuantity(std::string_view text, std::string& error);
std::optional<Millis> parseDuration(std::string_view text, std::string& error);
std::string formatDuration(Millis d);
std::string formatBytes(uint64_t bytes);

}  // namespace kuberelay::policy
