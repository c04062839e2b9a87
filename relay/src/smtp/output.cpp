// NAME
//   output.cpp - reply formatting into the Output's text buffer
#include "kuberelay/smtp/output.h"

#include <charconv>

namespace kuberelay::smtp {

const char* toString(EventStage stage) {
  switch (stage) {
    case EventStage::Connect:
      return "connect";
    case EventStage::Ehlo:
      return "ehlo";
    case EventStage::StartTls:
      return "starttls";
    case EventStage::Auth:
      return "auth";
    case EventStage::Mail:
      return "mail";
    case EventStage::Rcpt:
      return "rcpt";
    case EventStage::Data:
      return "data";
    case EventStage::Protocol:
      return "protocol";
  }
  return "?";
}

void Output::replyLine(const policy::Reply& reply, bool last) {
  if (!replyOpen_) {
    replyStart_ = text_.size();
    replyOpen_ = true;
  }
  char code[8];
  auto [end, ec] = std::to_chars(code, code + sizeof code, reply.code);
  (void)ec;
  text_.append(code, end);
  text_.push_back(last ? ' ' : '-');
  if (!reply.enhanced.empty()) {
    text_.append(reply.enhanced);
    text_.push_back(' ');
  }
  // Text can come from a banner or from the next hop: it must not be able to add lines.
  for (char c : reply.text) {
    text_.push_back(static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? ' ' : c);
  }
  text_.append("\r\n");
  if (last) {
    actions_.push_back(action::Reply{static_cast<uint32_t>(replyStart_),
                                     static_cast<uint32_t>(text_.size() - replyStart_),
                                     reply.code});
    replyOpen_ = false;
  }
}

}  // namespace kuberelay::smtp
