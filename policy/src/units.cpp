#include "units.h"

#include <array>
#include <cmath>

#include "ascii.h"

namespace kuberelay::policy {

std::optional<uint64_t> parseQuantity(std::string_view text, std::string& error) {
  auto fail = [&] {
    error = quote(text) + " is not a quantity (bytes, or a number with Ki, Mi, Gi, k, M, G)";
    return std::nullopt;
  };
  size_t i = 0;
  uint64_t whole = 0;
  if (text.empty()) return fail();
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    if (whole > (UINT64_MAX - 9) / 10) return fail();
    whole = whole * 10 + static_cast<uint64_t>(text[i] - '0');
    ++i;
  }
  if (i == 0) return fail();
  // Fraction ("1.5Mi"): kept as numerator/denominator to stay exact.
  uint64_t fraction = 0, scale = 1;
  if (i < text.size() && text[i] == '.') {
    ++i;
    size_t start = i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9' && scale < 1000000000ull) {
      fraction = fraction * 10 + static_cast<uint64_t>(text[i] - '0');
      scale *= 10;
      ++i;
    }
    if (i == start) return fail();
  }
  std::string_view suffix = text.substr(i);
  struct Unit {
    std::string_view name;
    uint64_t factor;
  };
  static constexpr std::array<Unit, 13> kUnits{{{"", 1},
                                                {"Ki", 1ull << 10},
                                                {"Mi", 1ull << 20},
                                                {"Gi", 1ull << 30},
                                                {"Ti", 1ull << 40},
                                                {"Pi", 1ull << 50},
                                                {"Ei", 1ull << 60},
                                                {"k", 1000ull},
                                                {"M", 1000000ull},
                                                {"G", 1000000000ull},
                                                {"T", 1000000000000ull},
                                                {"P", 1000000000000000ull},
                                                {"E", 1000000000000000000ull}}};
  for (const auto& unit : kUnits) {
    if (suffix != unit.name) continue;
    if (whole != 0 && unit.factor > UINT64_MAX / whole) return fail();
    uint64_t value = whole * unit.factor;
    // fraction * factor / scale, rounded up as Kubernetes does for byte quantities.
    long double part = static_cast<long double>(fraction) * static_cast<long double>(unit.factor) /
                       static_cast<long double>(scale);
    value += static_cast<uint64_t>(std::ceil(part));
    return value;
  }
  return fail();
}

std::optional<Millis> parseDuration(std::string_view text, std::string& error) {
  auto fail = [&] {
    error = quote(text) + " is not a duration such as 30s, 5m, 1h30m or 500ms";
    return std::nullopt;
  };
  if (text.empty()) return fail();
  long double total = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t start = i;
    long double number = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      number = number * 10 + (text[i] - '0');
      ++i;
    }
    if (i < text.size() && text[i] == '.') {
      ++i;
      long double place = 0.1L;
      while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
        number += (text[i] - '0') * place;
        place /= 10;
        ++i;
      }
    }
    if (i == start) return fail();
    long double unit = 0;
    if (text.substr(i, 2) == "ms") {
      unit = 1;
      i += 2;
    } else if (i < text.size() && text[i] == 's') {
      unit = 1000;
      ++i;
    } else if (i < text.size() && text[i] == 'm') {
      unit = 60000;
      ++i;
    } else if (i < text.size() && text[i] == 'h') {
      unit = 3600000;
      ++i;
    } else {
      return fail();
    }
    total += number * unit;
    if (total > 1e15L) return fail();
  }
  return Millis{static_cast<int64_t>(total)};
}

std::string formatDuration(Millis d) {
  int64_t ms = d.count();
  if (ms == 0) return "0s";
  if (ms % 3600000 == 0) return std::to_string(ms / 3600000) + "h";
  if (ms % 60000 == 0) return std::to_string(ms / 60000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

std::string formatBytes(uint64_t bytes) {
  static constexpr std::array<std::pair<uint64_t, const char*>, 4> kUnits{
      {{1ull << 40, "Ti"}, {1ull << 30, "Gi"}, {1ull << 20, "Mi"}, {1ull << 10, "Ki"}}};
  for (const auto& [factor, name] : kUnits) {
    if (bytes >= factor && bytes % factor == 0) return std::to_string(bytes / factor) + name;
  }
  return std::to_string(bytes);
}

}  // namespace kuberelay::policy
