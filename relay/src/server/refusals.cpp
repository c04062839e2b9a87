#include "refusals.h"

#include "kuberelay/common/logfmt.h"

namespace kuberelay::relay {

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
    out += "{\"time\": " + jsonString(logfmt::utcTimestamp(r.time, 3)) +
           ", \"session\": " + jsonString(r.session) +
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
