// NAME
//   data_decoder.cpp - end-of-data detection, dot-unstuffing, bare CR/LF, body measurements
// DESCRIPTION
//   One octet-level state machine; inside a line it jumps from one CR/LF to the next with
//   memchr, remembering where the next CR and the next LF are so that each input is scanned
//   once whatever its content (a body of only CRs or only LFs stays linear).
#include "kuberelay/smtp/data_decoder.h"

#include <algorithm>
#include <cstring>

#include "ascii.h"

namespace kuberelay::smtp {
namespace {

// Inserted content: the CR of a CRLF split across inputs, a normalised line ending, a "."
// that is content after all.
constexpr std::string_view kCr = "\r";
constexpr std::string_view kCrlf = "\r\n";
constexpr std::string_view kDot = ".";
constexpr std::string_view kReceived = "received:";

}  // namespace

const char* toString(BodyError error) {
  switch (error) {
    case BodyError::None:
      return "ok";
    case BodyError::BareLineEnding:
      return "bare_line_ending";
    case BodyError::LineTooLong:
      return "line_too_long";
    case BodyError::HeaderTooLarge:
      return "header_too_large";
    case BodyError::HopCountExceeded:
      return "hop_count_exceeded";
    case BodyError::MessageTooLarge:
      return "size_exceeded";
  }
  return "?";
}

void DataDecoder::reset(const BodyLimits& limits, Framing framing) {
  limits_ = limits;
  if (framing == Framing::Chunked) limits_.maxLineLength = 0;  // BDAT content has no lines
  framing_ = framing;
  state_ = State::LineStart;
  error_ = BodyError::None;
  crCarried_ = false;
  inHeader_ = true;
  receivedPrefix_ = true;
  size_ = 0;
  headerBytes_ = 0;
  lineLength_ = 0;
  received_ = 0;
}

void DataDecoder::content(const char* p, size_t n) {
  if (n == 0) return;
  if (inHeader_) {
    if (receivedPrefix_ && lineLength_ < kReceived.size()) {
      size_t k = std::min<size_t>(n, kReceived.size() - lineLength_);
      for (size_t j = 0; j < k; ++j) {
        if (asciiLower(p[j]) != kReceived[lineLength_ + j]) {
          receivedPrefix_ = false;
          break;
        }
      }
      if (receivedPrefix_ && lineLength_ + k == kReceived.size()) {
        ++received_;
        if (limits_.maxHopCount && received_ > limits_.maxHopCount) {
          fail(BodyError::HopCountExceeded);
        }
      }
    }
    headerBytes_ += n;
    if (limits_.maxHeaderSize && headerBytes_ > limits_.maxHeaderSize) {
      fail(BodyError::HeaderTooLarge);
    }
  }
  lineLength_ += n;
  size_ += n;
  if (limits_.maxLineLength && lineLength_ + 2 > limits_.maxLineLength) {
    fail(BodyError::LineTooLong);
  }
  if (limits_.maxMessageSize && size_ > limits_.maxMessageSize) fail(BodyError::MessageTooLarge);
}

void DataDecoder::lineBreak() {
  size_ += 2;
  if (inHeader_) {
    if (lineLength_ == 0) {
      inHeader_ = false;  // the blank line between header and body
    } else {
      headerBytes_ += 2;
      if (limits_.maxHeaderSize && headerBytes_ > limits_.maxHeaderSize) {
        fail(BodyError::HeaderTooLarge);
      }
    }
  }
  lineLength_ = 0;
  receivedPrefix_ = true;
  if (limits_.maxMessageSize && size_ > limits_.maxMessageSize) fail(BodyError::MessageTooLarge);
}

size_t DataDecoder::decode(std::string_view input, BodySink& sink) {
  if (state_ == State::Done) return 0;
  const char* const base = input.data();
  const size_t n = input.size();
  const bool dots = framing_ == Framing::DotStuffed;
  const bool normalize = limits_.normalizeBareLineEndings;

  size_t run = 0;  // start of the octets to pass on verbatim, not yet emitted
  auto emit = [&](std::string_view bytes) {
    if (error_ == BodyError::None && !bytes.empty()) sink.chunk(bytes);
  };
  auto flush = [&](size_t end) {
    if (end > run) emit(input.substr(run, end - run));
    run = end;
  };
  // Cached positions of the next CR and the next LF at or after some index (n: none).
  size_t nextCr = 0, nextLf = 0;
  bool crKnown = false, lfKnown = false;
  auto nextBreak = [&](size_t from) {
    if (!crKnown || nextCr < from) {
      auto* q = static_cast<const char*>(std::memchr(base + from, '\r', n - from));
      nextCr = q ? static_cast<size_t>(q - base) : n;
      crKnown = true;
    }
    if (!lfKnown || nextLf < from) {
      auto* q = static_cast<const char*>(std::memchr(base + from, '\n', n - from));
      nextLf = q ? static_cast<size_t>(q - base) : n;
      lfKnown = true;
    }
    return std::min(nextCr, nextLf);
  };

  size_t crAt = 0;  // in State::Cr without crCarried_: where the CR is
  size_t i = 0;
  while (i < n) {
    const char c = base[i];
    switch (state_) {
      case State::LineStart:
        if (dots && c == '.') {
          flush(i);
          run = i + 1;  // the leading dot is never content: end mark or stuffing
          state_ = State::Dot;
          ++i;
        } else {
          state_ = State::Text;
        }
        break;

      case State::SoftLineStart:
        if (dots && c == '.') {
          flush(i);
          run = i + 1;
          state_ = State::DotSoft;
          ++i;
        } else {
          state_ = State::Text;
        }
        break;

      case State::Text: {
        if (c == '\r') {
          state_ = State::Cr;
          crCarried_ = false;
          crAt = i++;
        } else if (c == '\n') {
          // Bare LF.
          if (normalize) {
            flush(i);
            emit(kCrlf);
            lineBreak();
            run = i + 1;
            state_ = State::SoftLineStart;
          } else {
            fail(BodyError::BareLineEnding);
          }
          ++i;
        } else {
          size_t end = nextBreak(i);
          content(base + i, end - i);
          i = end;
        }
        break;
      }

      case State::Cr:
        if (c == '\n') {
          if (crCarried_) emit(kCr);  // its LF starts this input's run
          lineBreak();
          state_ = State::LineStart;
          ++i;
        } else {
          // Bare CR: look at c again in the new state.
          if (normalize) {
            if (!crCarried_) flush(crAt);
            run = i;
            emit(kCrlf);
            lineBreak();
            state_ = State::SoftLineStart;
          } else {
            fail(BodyError::BareLineEnding);
            state_ = State::Text;
          }
        }
        break;

      case State::Dot:
        if (c == '\r') {
          run = i + 1;
          state_ = State::DotCr;
          ++i;
        } else if (c == '\n') {
          // "." then a bare LF: the line is a lone "." and content; Text handles the LF.
          emit(kDot);
          content(kDot.data(), 1);
          state_ = State::Text;
        } else {
          state_ = State::Text;  // a stuffed dot, dropped
        }
        break;

      case State::DotCr:
        if (c == '\n') {
          state_ = State::Done;
          return i + 1;
        }
        // ".\r" then more: the dot was stuffing, the CR is bare.
        if (normalize) {
          emit(kCrlf);
          lineBreak();
          state_ = State::SoftLineStart;
        } else {
          fail(BodyError::BareLineEnding);
          state_ = State::Text;
        }
        break;

      case State::DotSoft:
        if (c == '\r' || c == '\n') {
          // A lone "." after a normalised line break: content, never the end mark.
          emit(kDot);
          content(kDot.data(), 1);
        }
        state_ = State::Text;
        break;

      case State::Done:
        return i;
    }
  }
  if (state_ == State::Cr && !crCarried_) {
    flush(crAt);  // hold the CR back until the next input says what it is
    crCarried_ = true;
  } else {
    flush(n);
  }
  return n;
}

void DataDecoder::finish(BodySink& sink) {
  if (state_ == State::Cr) {
    if (limits_.normalizeBareLineEndings) {
      if (error_ == BodyError::None) sink.chunk(kCrlf);
      lineBreak();
    } else {
      fail(BodyError::BareLineEnding);
    }
  }
  state_ = State::Done;
}

size_t BdatReader::consume(std::string_view input, BodySink& sink) {
  size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, input.size()));
  if (n > 0) decoder_.decode(input.substr(0, n), sink);
  remaining_ -= n;
  if (remaining_ == 0 && last_ && !finished_) {
    decoder_.finish(sink);
    finished_ = true;
  }
  return n;
}

}  // namespace kuberelay::smtp
