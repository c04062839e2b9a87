#include "kuberelay/common/logfmt.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>

namespace kuberelay::logfmt {
namespace {

void appendValue(std::string& out, std::string_view v) {
  bool quote = v.empty() || v.find_first_of(" \"=\t\\") != std::string_view::npos;
  if (quote) out += '"';
  for (char c : v) {
    if (c == '"' || c == '\\') out += '\\';
    out += (static_cast<unsigned char>(c) < 0x20) ? ' ' : c;
  }
  if (quote) out += '"';
}

}  // namespace

std::string utcTimestamp(std::chrono::system_clock::time_point t, int fractionDigits) {
  const auto us =
      std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(us / 1000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char stamp[64];
  int n = std::snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
                        tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  const int micros = static_cast<int>(us % 1000000);
  if (fractionDigits == 3) {
    std::snprintf(stamp + n, sizeof(stamp) - n, ".%03dZ", micros / 1000);
  } else if (fractionDigits == 6) {
    std::snprintf(stamp + n, sizeof(stamp) - n, ".%06dZ", micros);
  } else {
    std::snprintf(stamp + n, sizeof(stamp) - n, "Z");
  }
  return stamp;
}

std::string isoTimestamp(std::string* day) {
  std::string stamp = utcTimestamp(std::chrono::system_clock::now(), 3);
  if (day) *day = stamp.substr(0, 4) + stamp.substr(5, 2) + stamp.substr(8, 2);
  return stamp;
}

void write(std::string_view level, std::string_view msg, std::initializer_list<Field> fields) {
  std::string line = "ts=";
  line += isoTimestamp();
  line += " level=";
  line += level;
  line += " msg=";
  appendValue(line, msg);
  for (const auto& [key, value] : fields) {
    line += ' ';
    line += key;
    line += '=';
    appendValue(line, value);
  }
  line += '\n';
  ssize_t ignored = ::write(2, line.data(), line.size());
  (void)ignored;
}

}  // namespace kuberelay::logfmt
