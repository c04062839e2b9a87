// NAME
//   logfmt.h - one logfmt line per event on standard error, shared by relay and operator
// DESCRIPTION
//   "ts=2026-11-22T17:52:06.558Z level=info msg=... key=value". Each line is written with a
//   single write(2), so lines from different threads never interleave. Values are quoted when
//   they contain spaces, quotes, '=' or backslashes; control characters become spaces. Never pass
//   a password, a Secret's contents or message content.
#pragma once

#include <chrono>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace kuberelay::logfmt {

using Field = std::pair<std::string_view, std::string_view>;

// RFC 3339 in UTC with `fractionDigits` (0, 3 or 6) of a second: "2026-11-22T17:52:06Z",
// "...06.558Z" (logs), "...06.558123Z" (metav1.MicroTime).
std::string utcTimestamp(std::chrono::system_clock::time_point t, int fractionDigits);
// Now, with milliseconds; `day` gets "20261122" when given.
std::string isoTimestamp(std::string* day = nullptr);
void write(std::string_view level, std::string_view msg, std::initializer_list<Field> fields);

}  // namespace kuberelay::logfmt
