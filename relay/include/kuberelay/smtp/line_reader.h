// NAME
//   line_reader.h - split the client's byte stream into SMTP command lines
// SYNOPSIS
//   LineReader reader;                       // kMaxCommandLine
//   std::string_view input = bytesJustRead;
//   while (auto line = reader.next(input)) {  // consumes from `input`
//     if (line->error != LineError::None) reply(...); else handle(line->text);
//   }
// DESCRIPTION
//   Only CRLF ends a line. A bare CR, a bare LF or a NUL inside a line makes the whole line
//   invalid (BareLineEnding) but does not end it, so a client cannot make this reader and a
//   downstream server disagree on where a command ends. A line longer than the limit (RFC 5321
//   §4.5.3.1.4: 512 octets including the CRLF) is reported as TooLong once its CRLF arrives,
//   and skipped up to that CRLF without buffering it, so the session keeps command sync
//   (Postfix smtpd_chat does the same). Lines may be split across any number of reads and a
//   read may hold many lines (PIPELINING). A line that arrives whole is returned as a view into
//   the caller's input; only a line split across reads is copied, once, into this reader.
//   The returned view is valid until the next call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kuberelay::smtp {

// RFC 5321 §4.5.3.1.4, including the CRLF.
inline constexpr size_t kMaxCommandLine = 512;
// RFC 4954 §4: a SASL response line may be up to 12288 octets, including the CRLF.
inline constexpr size_t kMaxAuthLine = 12288;

enum class LineError : uint8_t { None, TooLong, BareLineEnding };

struct Line {
  std::string_view text;  // without the CRLF; empty when error != None
  LineError error = LineError::None;
};

class LineReader {
public:
  explicit LineReader(size_t maxLine = kMaxCommandLine) : maxLine_(maxLine) {}

  // Consumes bytes from the front of `input` up to the end of the next line and returns it;
  // returns nullopt (having consumed all of `input`) when no line is complete yet.
  std::optional<Line> next(std::string_view& input);

  // The limit, including CRLF, for the line being read and the following ones.
  void setMaxLine(size_t maxLine) { maxLine_ = maxLine; }
  size_t maxLine() const { return maxLine_; }

  // Forgets a partial line (after STARTTLS: plaintext that must not survive into TLS).
  void reset();
  bool hasPartialLine() const { return octets_ > 0; }

private:
  std::string buffer_;  // the partial line's bytes so far, while within the limit
  size_t maxLine_;
  size_t octets_ = 0;       // octets of the partial line so far, counted even when not buffered
  bool crPending_ = false;  // the last octet seen was a CR
  bool bad_ = false;        // bare CR, bare LF or NUL seen in this line
  bool returnedBuffer_ = false;  // the last line returned was a view into buffer_
};

}  // namespace kuberelay::smtp
