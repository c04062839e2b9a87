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

std::string isoTimestamp(std::string* day) {
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char stamp[64];
  std::snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  if (day) {
    char d[40];
    std::snprintf(d, sizeof(d), "%04d%02d%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
    *day = d;
  }
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
