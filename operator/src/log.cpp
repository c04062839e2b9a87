#include "log.h"

#include <atomic>

#include "kuberelay/common/logfmt.h"

namespace kuberelay::op {
namespace {

std::atomic<int> minLevel{static_cast<int>(LogLevel::Info)};

const char* name(LogLevel level) {
  switch (level) {
    case LogLevel::Debug:
      return "debug";
    case LogLevel::Info:
      return "info";
    case LogLevel::Warn:
      return "warn";
    case LogLevel::Error:
      return "error";
  }
  return "info";
}

}  // namespace

void setLogLevel(LogLevel level) { minLevel = static_cast<int>(level); }

void log(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields) {
  if (static_cast<int>(level) < minLevel.load()) return;
  logfmt::write(name(level), msg, fields);
}

}  // namespace kuberelay::op
