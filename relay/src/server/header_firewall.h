// NAME
//   header_firewall.h - Exchange's header firewall on the content a relay forwards
// DESCRIPTION
//   Headers that carry routing or organisation state are only believed from clients trusted
//   with them (exchange-semantics.md §1.5): without ms-Exch-Accept-Headers-Routing the client's
//   Received and Resent-* fields are removed, without ms-Exch-Accept-Headers-Organization its
//   X-MS-Exchange-Organization-* fields, without ms-Exch-Accept-Headers-Forest its
//   X-MS-Exchange-Forest-* fields. Streaming and pure: header fields (with their folded
//   continuation lines) are decided one at a time as they complete; after the blank line that
//   ends the header section, the body passes through untouched and uncopied.
#pragma once

#include <string>
#include <string_view>

#include "kuberelay/policy/rights.h"

namespace kuberelay::relay {

class HeaderFirewall {
public:
  explicit HeaderFirewall(policy::Rights rights) : rights_(rights) {}

  // Consumes `in`. Header bytes that survive are appended to `headers`; once the header section
  // has ended, the rest of `in` is returned as is (a view into `in`) and every later call returns
  // its whole input.
  std::string_view feed(std::string_view in, std::string& headers);
  // End of the message: whatever field is still pending is decided and appended.
  void finish(std::string& headers);
  // Number of fields removed so far.
  size_t removed() const { return removed_; }
  // True when nothing would ever be removed (every right held): callers may skip the filter.
  bool passThrough() const;

private:
  bool keep(std::string_view field) const;
  void completeField(std::string& headers);

  policy::Rights rights_;
  bool inHeaders_ = true;
  std::string line_;   // the current line, until its LF arrives
  std::string field_;  // the current header field, CRLFs and continuation lines included
  size_t removed_ = 0;
};

}  // namespace kuberelay::relay
