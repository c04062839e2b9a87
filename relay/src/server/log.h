// NAME
//   log.h - one logfmt line per event on stderr
// DESCRIPTION
//   Each call writes one complete line with a single write(2), so lines from different threads
//   never interleave. Values are quoted when they contain spaces, quotes or '='. Never pass a
//   password or message content.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace kuberelay::relay {

using Field = std::pair<std::string_view, std::string_view>;  // as logfmt::Field
void log(std::string_view level, std::string_view msg, std::initializer_list<Field> fields = {});

// "2026-11-22T17:52:06.558Z" (UTC, milliseconds); `day` gets "20261122" when given.
std::string isoTimestamp(std::string* day = nullptr);

}  // namespace kuberelay::relay
