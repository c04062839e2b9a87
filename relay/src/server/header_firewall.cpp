#include "header_firewall.h"

#include "kuberelay/policy/ascii.h"

namespace kuberelay::relay {

using ascii::istartsWith;

bool HeaderFirewall::passThrough() const {
  using namespace policy::right;
  const policy::Rights all =
      kAcceptRoutingHeaders | kAcceptOrganizationHeaders | kAcceptForestHeaders;
  return (rights_ & all) == all;
}

bool HeaderFirewall::keep(std::string_view field) const {
  using namespace policy::right;
  size_t colon = field.find(':');
  std::string_view name = field.substr(0, colon);
  while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
  if (!(rights_ & kAcceptRoutingHeaders) &&
      (ascii::iequals(name, "Received") || istartsWith(name, "Resent-"))) {
    return false;
  }
  if (!(rights_ & kAcceptOrganizationHeaders) && istartsWith(name, "X-MS-Exchange-Organization-")) {
    return false;
  }
  if (!(rights_ & kAcceptForestHeaders) && istartsWith(name, "X-MS-Exchange-Forest-")) {
    return false;
  }
  return true;
}

void HeaderFirewall::completeField(std::string& headers) {
  if (field_.empty()) return;
  if (keep(field_)) {
    headers += field_;
  } else {
    ++removed_;
  }
  field_.clear();
}

std::string_view HeaderFirewall::feed(std::string_view in, std::string& headers) {
  while (inHeaders_ && !in.empty()) {
    size_t nl = in.find('\n');
    size_t take = nl == std::string_view::npos ? in.size() : nl + 1;
    line_.append(in.substr(0, take));
    in.remove_prefix(take);
    if (nl == std::string_view::npos) break;  // the rest of the line comes in the next chunk
    if (line_ == "\r\n" || line_ == "\n") {   // the blank line ends the header section
      completeField(headers);
      headers += line_;
      line_.clear();
      inHeaders_ = false;
      break;
    }
    if (line_[0] == ' ' || line_[0] == '\t') {
      field_ += line_;  // a folded continuation of the current field
    } else {
      completeField(headers);
      field_ = line_;
    }
    line_.clear();
  }
  return in;
}

void HeaderFirewall::finish(std::string& headers) {
  if (!inHeaders_) return;
  if (!line_.empty()) {
    if (line_[0] == ' ' || line_[0] == '\t') {
      field_ += line_;
    } else {
      completeField(headers);
      field_ = line_;
    }
    line_.clear();
  }
  completeField(headers);
}

}  // namespace kuberelay::relay
