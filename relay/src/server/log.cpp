#include "log.h"

#include "kuberelay/common/logfmt.h"

namespace kuberelay::relay {

std::string isoTimestamp(std::string* day) { return logfmt::isoTimestamp(day); }

void log(std::string_view level, std::string_view msg, std::initializer_list<Field> fields) {
  logfmt::write(level, msg, fields);
}

}  // namespace kuberelay::relay
