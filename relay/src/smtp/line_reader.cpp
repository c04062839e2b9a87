// NAME
//   line_reader.cpp - CRLF framing of command lines, bare line endings, the length limit
#include "kuberelay/smtp/line_reader.h"

namespace kuberelay::smtp {

void LineReader::reset() {
  buffer_.clear();
  octets_ = 0;
  crPending_ = false;
  bad_ = false;
  returnedBuffer_ = false;
}

std::optional<Line> LineReader::next(std::string_view& input) {
  if (returnedBuffer_) {
    // The previous line was handed out as a view into buffer_; it is consumed now.
    buffer_.clear();
    returnedBuffer_ = false;
  }
  const size_t n = input.size();
  for (size_t i = 0; i < n; ++i) {
    const char c = input[i];
    if (crPending_) {
      crPending_ = false;
      if (c == '\n') {
        // CRLF: the line ends here. Its octets: octets_ before this input, i + 1 in it.
        const size_t total = octets_ + i + 1;
        Line line;
        if (total > maxLine_) {
          line.error = LineError::TooLong;
        } else if (bad_) {
          line.error = LineError::BareLineEnding;
        } else if (octets_ == 0) {
          line.text = input.substr(0, i - 1);  // the whole line is in this input: no copy
        } else {
          buffer_.append(input.data(), i + 1);
          line.text = std::string_view(buffer_).substr(0, buffer_.size() - 2);
          returnedBuffer_ = true;
        }
        if (!returnedBuffer_) buffer_.clear();
        octets_ = 0;
        bad_ = false;
        input.remove_prefix(i + 1);
        return line;
      }
      bad_ = true;  // a CR not followed by LF
    }
    if (c == '\r') {
      crPending_ = true;
    } else if (c == '\n' || c == '\0') {
      bad_ = true;
    }
  }
  // No line end in this input: keep its bytes while the line can still be within the limit.
  if (octets_ + n <= maxLine_) {
    buffer_.append(input.data(), n);
  } else {
    buffer_.clear();
  }
  octets_ += n;
  input.remove_prefix(n);
  return std::nullopt;
}

}  // namespace kuberelay::smtp
