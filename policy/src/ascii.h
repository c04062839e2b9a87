// Small ASCII string helpers private to the policy library.
#pragma once

#include <string>
#include <string_view>

namespace kuberelay::policy {

inline char asciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (asciiLower(a[i]) != asciiLower(b[i])) return false;
  }
  return true;
}

inline std::string lowerCopy(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = asciiLower(c);
  return out;
}

inline std::string quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

}  // namespace kuberelay::policy
