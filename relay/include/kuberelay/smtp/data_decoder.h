// NAME
//   data_decoder.h - message content after DATA (dot-stuffed) or BDAT (counted)
// SYNOPSIS
//   DataDecoder decoder;
//   decoder.reset(limits, DataDecoder::Framing::DotStuffed);
//   size_t used = decoder.decode(input, sink);   // sink.chunk(view) for each decoded piece
//   if (decoder.done()) { ... decoder.error(), decoder.size() ... }
// DESCRIPTION
//   DATA: the body ends at exactly <CRLF>.<CRLF>, where the first CRLF may be the one that ended
//   the DATA command (so ".\r\n" alone is an empty message). Dot-stuffing is undone (RFC 5321
//   §4.5.2). A bare CR or bare LF (one not part of a CRLF) never ends the data, whatever follows
//   it: "\n.\n", "\n.\r\n", "\r.\r", "\r\n.\n" are content. Such content marks the message as
//   having bad line endings: by default it must then be refused at the end (SMTP smuggling:
//   a next hop could end the data where this relay did not) and nothing more of it is passed
//   on; with normalizeBareLineEndings each bare CR or LF becomes CRLF instead (Postfix's
//   smtpd_forbid_bare_newline=normalize: the line after it is unstuffed, but a "." on it still
//   does not end the data).
//   BDAT (RFC 3030): the same decoder without dot handling; BdatReader counts each chunk's
//   octets exactly, whatever they are.
//   While decoding it measures what the session checks at the end: decoded size (content sent
//   past maxMessageSize is no longer passed on), header section size, Received: header count,
//   and the length of each text line (RFC 5321 §4.5.3.1.6: 1000 octets with CRLF, DATA only).
//   The first limit crossed is the error; decoding continues to the end so that the session
//   stays in sync, but nothing more is passed to the sink.
//   Chunks are views into the caller's input, or into static storage for inserted bytes; a
//   read of many lines gives one chunk unless a stuffed dot or a split CRLF interrupts it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace kuberelay::smtp {

// RFC 5321 §4.5.3.1.6, including the CRLF.
inline constexpr size_t kMaxTextLine = 1000;

struct BodyLimits {
  uint64_t maxMessageSize = 0;  // decoded octets; 0: no limit
  uint64_t maxHeaderSize = 0;   // octets of the header section (without the blank line); 0: none
  uint32_t maxHopCount = 0;     // more Received: headers than this is a loop; 0: no limit
  size_t maxLineLength = kMaxTextLine;  // including CRLF; 0: no limit
  bool normalizeBareLineEndings = false;
};

enum class BodyError : uint8_t {
  None,
  BareLineEnding,
  LineTooLong,
  HeaderTooLarge,
  HopCountExceeded,
  MessageTooLarge,
};
const char* toString(BodyError error);

// Receives decoded content. A view passed to chunk() is valid until the caller of decode()
// changes its input buffer.
class BodySink {
public:
  virtual void chunk(std::string_view bytes) = 0;

protected:
  ~BodySink() = default;
};

class DataDecoder {
public:
  enum class Framing : uint8_t { DotStuffed, Chunked };

  void reset(const BodyLimits& limits, Framing framing);

  // DotStuffed: consumes input up to and including the end-of-data mark and returns the octets
  // consumed (all of `input` until done()). Chunked: all of `input` is content.
  size_t decode(std::string_view input, BodySink& sink);
  // Chunked: the last chunk ended (a CR still pending is a bare CR).
  void finish(BodySink& sink);

  bool done() const { return state_ == State::Done; }
  BodyError error() const { return error_; }
  uint64_t size() const { return size_; }
  uint64_t headerSize() const { return headerBytes_; }
  uint32_t receivedHeaders() const { return received_; }

private:
  enum class State : uint8_t {
    LineStart,      // after a CRLF: "." may begin the end mark or a stuffed line
    SoftLineStart,  // after a bare CR/LF turned into CRLF: "." is unstuffed, never the end
    Text,
    Cr,       // a CR whose meaning depends on the next octet
    Dot,      // "." at LineStart
    DotCr,    // ".\r" at LineStart: LF ends the data
    DotSoft,  // "." at SoftLineStart
    Done,
  };
  void content(const char* p, size_t n);
  void lineBreak();
  void fail(BodyError error) {
    if (error_ == BodyError::None) error_ = error;
  }

  BodyLimits limits_;
  Framing framing_ = Framing::DotStuffed;
  State state_ = State::LineStart;
  BodyError error_ = BodyError::None;
  bool crCarried_ = false;  // in State::Cr: the CR was the last octet of an earlier input
  bool inHeader_ = true;
  bool receivedPrefix_ = true;  // the current header line still matches "Received:"
  uint64_t size_ = 0;
  uint64_t headerBytes_ = 0;
  uint64_t lineLength_ = 0;
  uint32_t received_ = 0;
};

// BDAT chunks: exactly `size` octets each, no dot-stuffing, the message ends with LAST.
class BdatReader {
public:
  void beginMessage(const BodyLimits& limits) {
    decoder_.reset(limits, DataDecoder::Framing::Chunked);
    remaining_ = 0;
    last_ = false;
    finished_ = false;
  }
  void beginChunk(uint64_t size, bool last) {
    remaining_ = size;
    last_ = last;
  }
  // Consumes at most the rest of the current chunk and returns the octets consumed. At the end
  // of the LAST chunk the message's checks are complete.
  size_t consume(std::string_view input, BodySink& sink);
  bool chunkComplete() const { return remaining_ == 0; }
  bool lastChunk() const { return last_; }
  const DataDecoder& decoder() const { return decoder_; }

private:
  DataDecoder decoder_;
  uint64_t remaining_ = 0;
  bool last_ = false;
  bool finished_ = false;
};

}  // namespace kuberelay::smtp
