// DATA and BDAT content: end of data, dot-unstuffing, SMTP smuggling sequences, the checks.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "kuberelay/smtp/data_decoder.h"

namespace kuberelay::smtp {
namespace {

struct Collect : BodySink {
  void chunk(std::string_view bytes) override {
    body.append(bytes);
    ++chunks;
  }
  std::string body;
  size_t chunks = 0;
};

struct Result {
  std::string body;
  size_t consumed = 0;  // octets of the stream used, through the end mark
  bool done = false;
  BodyError error = BodyError::None;
  uint64_t size = 0;
  uint32_t received = 0;
  uint64_t headerSize = 0;
  size_t chunks = 0;
  bool operator==(const Result& o) const {
    return body == o.body && consumed == o.consumed && done == o.done && error == o.error &&
           size == o.size && received == o.received && headerSize == o.headerSize;
  }
};

std::ostream& operator<<(std::ostream& os, const Result& r) {
  return os << "{body=" << ::testing::PrintToString(r.body) << " consumed=" << r.consumed
            << " done=" << r.done << " error=" << toString(r.error) << " size=" << r.size
            << " received=" << r.received << " header=" << r.headerSize << "}";
}

Result decodeWithCuts(std::string_view stream, const BodyLimits& limits, std::vector<size_t> cuts) {
  DataDecoder d;
  d.reset(limits, DataDecoder::Framing::DotStuffed);
  Collect sink;
  Result r;
  size_t pos = 0;
  cuts.push_back(stream.size());
  for (size_t cut : cuts) {
    if (cut <= pos) continue;
    std::string_view piece = stream.substr(pos, cut - pos);
    size_t used = d.decode(piece, sink);
    r.consumed += used;
    if (d.done()) break;
    EXPECT_EQ(used, piece.size());
    pos = cut;
  }
  r.body = sink.body;
  r.chunks = sink.chunks;
  r.done = d.done();
  r.error = d.error();
  r.size = d.size();
  r.received = d.receivedHeaders();
  r.headerSize = d.headerSize();
  return r;
}

// Decodes whole, byte by byte and in random pieces; all must agree (except chunk counts, and
// the partial body of a refused message, which is never used).
Result decode(std::string_view stream, BodyLimits limits = {}) {
  Result whole = decodeWithCuts(stream, limits, {});
  std::vector<size_t> bytes;
  for (size_t i = 1; i < stream.size(); ++i) bytes.push_back(i);
  Result bytewise = decodeWithCuts(stream, limits, bytes);
  std::mt19937 random(42);
  for (int run = 0; run < 20; ++run) {
    std::vector<size_t> cuts;
    for (size_t i = 1; i < stream.size(); ++i) {
      if (random() % 5 == 0) cuts.push_back(i);
    }
    Result piecewise = decodeWithCuts(stream, limits, cuts);
    if (whole.error != BodyError::None) piecewise.body = bytewise.body = whole.body;
    EXPECT_EQ(piecewise, whole) << "random cuts, run " << run;
  }
  EXPECT_EQ(bytewise, whole) << "byte by byte";
  return whole;
}

BodyLimits normalising() {
  BodyLimits l;
  l.normalizeBareLineEndings = true;
  return l;
}

TEST(DataDecoder, EndOfDataAndTrailingInput) {
  Result r = decode("Subject: hi\r\n\r\nbody\r\n.\r\nQUIT\r\n");
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.body, "Subject: hi\r\n\r\nbody\r\n");
  EXPECT_EQ(r.consumed, 24u);  // QUIT is left for the command reader
  EXPECT_EQ(r.size, r.body.size());
  EXPECT_EQ(r.error, BodyError::None);
}

TEST(DataDecoder, EmptyMessageUsesTheDataCommandsCrlf) {
  Result r = decode(".\r\n");
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.body, "");
  EXPECT_EQ(r.consumed, 3u);
}

TEST(DataDecoder, DotUnstuffing) {
  Result r = decode("..leading dot\r\n...\r\n.\r\r\n..\r\nx.\r\n.\r\n");
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.error, BodyError::BareLineEnding);  // ".\r\r\n" holds a bare CR
  Result clean = decode("..leading dot\r\n...\r\n..\r\nx.\r\n. \r\n.x\r\n.\r\n");
  EXPECT_EQ(clean.error, BodyError::None);
  EXPECT_EQ(clean.body, ".leading dot\r\n..\r\n.\r\nx.\r\n \r\nx\r\n");
}

TEST(DataDecoder, AWholeReadOfCleanLinesIsOneChunk) {
  Result r = decodeWithCuts("line one\r\nline two\r\nline three\r\n.\r\n", {}, {});
  EXPECT_EQ(r.chunks, 1u);
}

TEST(DataDecoder, SmugglingSequencesNeverEndTheData) {
  // Each of these must be content; the data ends only at the final <CRLF>.<CRLF>.
  const char* sequences[] = {"\n.\n",   "\n.\r\n", "\r.\r",       "\r\n.\n", "\r\n.\r",
                             "\r.\r\n", "\n.\r",   "\r\n.\r\r\n", ".\n"};
  for (const char* seq : sequences) {
    std::string stream =
        std::string("header: x\r\n\r\nbefore") + seq + "MAIL FROM:<evil@x>\r\n.\r\n";
    Result r = decode(stream);
    EXPECT_TRUE(r.done) << ::testing::PrintToString(seq);
    EXPECT_EQ(r.consumed, stream.size()) << ::testing::PrintToString(seq);
    EXPECT_EQ(r.error, BodyError::BareLineEnding) << ::testing::PrintToString(seq);
  }
}

TEST(DataDecoder, BareLineEndingsAnywhereAreDetected) {
  EXPECT_EQ(decode("a\nb\r\n.\r\n").error, BodyError::BareLineEnding);
  EXPECT_EQ(decode("a\rb\r\n.\r\n").error, BodyError::BareLineEnding);
  EXPECT_EQ(decode("\n.\r\n").error, BodyError::BareLineEnding);
  EXPECT_EQ(decode("\r\r\n.\r\n").error, BodyError::BareLineEnding);
  EXPECT_EQ(decode("ok\r\n\r\n.\r\n").error, BodyError::None);
}

TEST(DataDecoder, RefusedContentIsNotPassedOnAfterTheProblem) {
  Result r = decodeWithCuts("clean\r\nbad\nafter\r\n.\r\n", {}, {7, 11});
  EXPECT_EQ(r.error, BodyError::BareLineEnding);
  EXPECT_EQ(r.body, "clean\r\n");
}

TEST(DataDecoder, NormaliseTurnsBareLineEndingsIntoCrlf) {
  Result r = decode("a\nb\rc\r\n.\r\n", normalising());
  EXPECT_EQ(r.error, BodyError::None);
  EXPECT_EQ(r.body, "a\r\nb\r\nc\r\n");
  EXPECT_EQ(r.size, r.body.size());
}

TEST(DataDecoder, NormalisedLineBreaksNeverEndTheData) {
  // "\n.\r\n" and "\n.\n": the lone dot after a bare LF is content, not the end mark.
  Result r = decode("a\n.\r\nb\n.\nc\r\n.\r\n", normalising());
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.error, BodyError::None);
  EXPECT_EQ(r.body, "a\r\n.\r\nb\r\n.\r\nc\r\n");
  // A stuffed dot after a normalised break is unstuffed, as after a CRLF.
  EXPECT_EQ(decode("a\n..x\r\n.\r\n", normalising()).body, "a\r\n.x\r\n");
  // "\r\n.\n": the dot after a real CRLF, then a bare LF: content too.
  EXPECT_EQ(decode("a\r\n.\nb\r\n.\r\n", normalising()).body, "a\r\n.\r\nb\r\n");
  // ".\r" then more: the dot was stuffing, the CR becomes a line break.
  EXPECT_EQ(decode("a\r\n.\rb\r\n.\r\n", normalising()).body, "a\r\n\r\nb\r\n");
  EXPECT_EQ(decode("\r.\r\n.\r\n", normalising()).body, "\r\n.\r\n");
}

TEST(DataDecoder, CrlfSplitAcrossReadsIsOneLineBreak) {
  Result r = decodeWithCuts("ab\r\ncd\r\n.\r\n", {}, {3});
  EXPECT_EQ(r.body, "ab\r\ncd\r\n");
  EXPECT_EQ(r.error, BodyError::None);
}

TEST(DataDecoder, CountsReceivedHeadersInTheHeaderSectionOnly) {
  Result r = decode(
      "Received: from a\r\nreceived: from b\r\n\tcontinued\r\nRECEIVED:from c\r\nX-Received: no\r\n"
      "Subject: s\r\n\r\nReceived: in the body\r\n.\r\n");
  EXPECT_EQ(r.received, 3u);
  EXPECT_EQ(r.error, BodyError::None);
}

TEST(DataDecoder, HopCountLimit) {
  std::string headers;
  for (int i = 0; i < 3; ++i) headers += "Received: hop\r\n";
  BodyLimits l;
  l.maxHopCount = 3;
  EXPECT_EQ(decode(headers + "\r\nbody\r\n.\r\n", l).error, BodyError::None);
  EXPECT_EQ(decode(headers + "Received: one more\r\n\r\nbody\r\n.\r\n", l).error,
            BodyError::HopCountExceeded);
}

TEST(DataDecoder, HeaderSizeLimit) {
  BodyLimits l;
  l.maxHeaderSize = 20;
  Result ok = decode("Subject: 0123456\r\n\r\n" + std::string(100, 'b') + "\r\n.\r\n", l);
  EXPECT_EQ(ok.headerSize, 18u);
  EXPECT_EQ(ok.error, BodyError::None);
  EXPECT_EQ(decode("Subject: 0123456789\r\n\r\nb\r\n.\r\n", l).error, BodyError::HeaderTooLarge);
  // Without a blank line everything is header.
  EXPECT_EQ(decode(std::string(30, 'h') + "\r\n.\r\n", l).error, BodyError::HeaderTooLarge);
}

TEST(DataDecoder, TextLineLimitIncludesCrlfButNotTheStuffedDot) {
  const std::string fits(998, 'x');
  EXPECT_EQ(decode(fits + "\r\n.\r\n").error, BodyError::None);
  EXPECT_EQ(decode("." + fits + "\r\n.\r\n").error, BodyError::None);
  EXPECT_EQ(decode(fits + "x\r\n.\r\n").error, BodyError::LineTooLong);
  Result r = decode(fits + "x\r\nmore\r\n.\r\nNOOP\r\n");
  EXPECT_TRUE(r.done);  // still finds the end, so the session keeps sync
  EXPECT_EQ(r.consumed, fits.size() + 1 + 2 + 6 + 3);
}

TEST(DataDecoder, MessageSizeLimitStopsPassingContentOn) {
  BodyLimits l;
  l.maxMessageSize = 10;
  Result r = decode("0123456789\r\nabc\r\n.\r\n", l);
  EXPECT_EQ(r.error, BodyError::MessageTooLarge);
  EXPECT_EQ(r.size, 17u);
  EXPECT_TRUE(r.done);
  EXPECT_EQ(decode("01234567\r\n.\r\n", l).error, BodyError::None);
}

TEST(DataDecoder, BinaryJunkStaysLinear) {
  // Only CRs, then only LFs: every octet bare. Must finish quickly and find the end.
  std::string stream;
  for (int i = 0; i < 100000; ++i) stream += "x\r";
  for (int i = 0; i < 100000; ++i) stream += "x\n";
  stream += std::string(100000, '\r');
  stream += "\r\n.\r\n";
  Result r = decodeWithCuts(stream, normalising(), {});
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.error, BodyError::None);
}

TEST(BdatReader, CountsOctetsExactlyWithoutDotHandling) {
  BdatReader reader;
  reader.beginMessage({});
  Collect sink;
  reader.beginChunk(8, false);
  std::string_view input = "a\r\n.\r\nb\r\nBDAT";
  size_t used = reader.consume(input, sink);
  EXPECT_EQ(used, 8u);
  EXPECT_TRUE(reader.chunkComplete());
  reader.beginChunk(0, true);
  EXPECT_EQ(reader.consume({}, sink), 0u);
  EXPECT_TRUE(reader.decoder().done());
  EXPECT_EQ(sink.body, "a\r\n.\r\nb");  // the dangling CR is never passed on
  // The chunk ended in a CR that nothing followed: bare.
  EXPECT_EQ(reader.decoder().error(), BodyError::BareLineEnding);
}

TEST(BdatReader, CrlfSplitAcrossChunks) {
  BdatReader reader;
  reader.beginMessage({});
  Collect sink;
  reader.beginChunk(3, false);
  EXPECT_EQ(reader.consume("ab\r", sink), 3u);
  reader.beginChunk(4, true);
  EXPECT_EQ(reader.consume("\ncd\r\n", sink), 4u);
  EXPECT_TRUE(reader.chunkComplete());
  EXPECT_EQ(reader.decoder().error(), BodyError::BareLineEnding);  // "cd\r" ended the message
  BdatReader clean;
  clean.beginMessage({});
  Collect body;
  clean.beginChunk(3, false);
  clean.consume("ab\r", body);
  clean.beginChunk(1, true);
  clean.consume("\n", body);
  EXPECT_EQ(clean.decoder().error(), BodyError::None);
  EXPECT_EQ(body.body, "ab\r\n");
}

TEST(BdatReader, NoLineLengthLimitButSizeHeaderAndHops) {
  BodyLimits l;
  l.maxHopCount = 1;
  BdatReader reader;
  reader.beginMessage(l);
  Collect sink;
  const std::string content =
      "Received: a\r\nReceived: b\r\n\r\n" + std::string(5000, 'x') + "\r\n";
  reader.beginChunk(content.size(), true);
  reader.consume(content, sink);
  EXPECT_EQ(reader.decoder().receivedHeaders(), 2u);
  EXPECT_EQ(reader.decoder().error(), BodyError::HopCountExceeded);
}

}  // namespace
}  // namespace kuberelay::smtp
