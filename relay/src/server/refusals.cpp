#include "refusals.h"

#include <ctime>

namespace kuberelay::relay {
namespace {

std::string utc(std::chrono::system_clock::time_point t) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];  // room for any int the format could print
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

}  // namespace

void RecentRefusals::add(Refusal refusal) {
  if (capacity_ == 0) return;
  if (ring_.size() == capacity_) ring_.pop_front();
  ring_.push_back(std::move(refusal));
}

std::string RecentRefusals::toJson(size_t limit) const {
  using policy::jsonString;
  std::string out = "{\"refusals\": [";
  size_t n = 0;
  for (auto it = ring_.rbegin(); it != ring_.rend() && n < limit; ++it, ++n) {
    const Refusal& r = *it;
    out += n ? ",\n" : "\n";
    out += "{\"time\": " + jsonString(utc(r.time)) + ", \"session\": " + jsonString(r.session) +
           ", \"client\": " + jsonString(r.request.from.toString()) +
           ", \"port\": " + std::to_string(r.request.toPort) +
           ", \"connector\": " + jsonString(r.connector) + ", \"stage\": " + jsonString(r.stage) +
           ", \"reply\": " + jsonString(r.reply) + ", \"reason\": " + jsonString(r.reason) +
           ", \"principal\": " + jsonString(r.principal) +
           ",\n \"explain\": " + policy::explainSession(r.snapshot, r.request).toJson() + "}";
  }
  return out + "\n]}\n";
}

}  // namespace kuberelay::relay
