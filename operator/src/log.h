// NAME
//   log.h - the operator's logs: one logfmt line per event on stderr
// DESCRIPTION
//   ts=... level=info msg="..." key=value. Each line is written with a single write(2), so
//   lines from different threads never interleave. Values are quoted when they contain spaces,
//   quotes or '='; control characters become spaces. Never pass Secret contents.
#pragma once

#include <initializer_list>
#include <string_view>
#include <utility>

namespace kuberelay::op {

using LogField = std::pair<std::string_view, std::string_view>;

enum class LogLevel { Debug, Info, Warn, Error };
void setLogLevel(LogLevel level);
void log(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields = {});

inline void logInfo(std::string_view msg, std::initializer_list<LogField> fields = {}) {
  log(LogLevel::Info, msg, fields);
}
inline void logWarn(std::string_view msg, std::initializer_list<LogField> fields = {}) {
  log(LogLevel::Warn, msg, fields);
}
inline void logError(std::string_view msg, std::initializer_list<LogField> fields = {}) {
  log(LogLevel::Error, msg, fields);
}
inline void logDebug(std::string_view msg, std::initializer_list<LogField> fields = {}) {
  log(LogLevel::Debug, msg, fields);
}

}  // namespace kuberelay::op
