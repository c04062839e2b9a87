// Command line framing: CRLF only, bare CR/LF/NUL, the 512-octet limit, any split.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "kuberelay/smtp/line_reader.h"

namespace kuberelay::smtp {
namespace {

// "text" for a good line, "!long" / "!bare" for errors.
std::vector<std::string> readAll(std::string_view stream, std::vector<size_t> cuts,
                                 size_t maxLine = kMaxCommandLine) {
  LineReader reader(maxLine);
  std::vector<std::string> lines;
  size_t pos = 0;
  cuts.push_back(stream.size());
  for (size_t cut : cuts) {
    std::string_view input = stream.substr(pos, cut - pos);
    pos = cut;
    while (auto line = reader.next(input)) {
      switch (line->error) {
        case LineError::None:
          lines.emplace_back(line->text);
          break;
        case LineError::TooLong:
          lines.emplace_back("!long");
          break;
        case LineError::BareLineEnding:
          lines.emplace_back("!bare");
          break;
      }
    }
    EXPECT_TRUE(input.empty());
  }
  return lines;
}

std::vector<std::string> readBytewise(std::string_view stream, size_t maxLine = kMaxCommandLine) {
  std::vector<size_t> cuts;
  for (size_t i = 1; i < stream.size(); ++i) cuts.push_back(i);
  return readAll(stream, cuts, maxLine);
}

using Lines = std::vector<std::string>;

TEST(LineReader, PipelinedLinesInOneRead) {
  EXPECT_EQ(readAll("EHLO a\r\nMAIL FROM:<x@y>\r\nRCPT TO:<z@w>\r\n", {}),
            (Lines{"EHLO a", "MAIL FROM:<x@y>", "RCPT TO:<z@w>"}));
}

TEST(LineReader, LinesSplitAnywhere) {
  const std::string stream = "EHLO a\r\nNOOP\r\n\r\nQUIT\r\n";
  const Lines want{"EHLO a", "NOOP", "", "QUIT"};
  EXPECT_EQ(readBytewise(stream), want);
  EXPECT_EQ(readAll(stream, {7}), want);  // between CR and LF
  EXPECT_EQ(readAll(stream, {6}), want);  // before the CR
  std::mt19937 random(7);
  for (int run = 0; run < 50; ++run) {
    std::vector<size_t> cuts;
    for (size_t i = 1; i < stream.size(); ++i) {
      if (random() % 3 == 0) cuts.push_back(i);
    }
    EXPECT_EQ(readAll(stream, cuts), want);
  }
}

TEST(LineReader, PartialLineWaitsForItsCrlf) {
  LineReader reader;
  std::string_view a = "EHLO cli";
  EXPECT_FALSE(reader.next(a));
  EXPECT_TRUE(reader.hasPartialLine());
  std::string_view b = "ent\r";
  EXPECT_FALSE(reader.next(b));
  std::string_view c = "\nNOOP";
  auto line = reader.next(c);
  ASSERT_TRUE(line);
  EXPECT_EQ(line->text, "EHLO client");
  EXPECT_EQ(c, "NOOP");
}

TEST(LineReader, WholeLinesAreViewsIntoTheInput) {
  LineReader reader;
  const std::string stream = "NOOP\r\n";
  std::string_view input = stream;
  auto line = reader.next(input);
  ASSERT_TRUE(line);
  EXPECT_EQ(line->text.data(), stream.data());
}

TEST(LineReader, OnlyCrlfEndsALine) {
  EXPECT_EQ(readAll("NOOP\nQUIT\r\n", {}), (Lines{"!bare"}));
  EXPECT_EQ(readAll("NOOP\rQUIT\r\n", {}), (Lines{"!bare"}));
  EXPECT_EQ(readAll(std::string("NO\0OP\r\nQUIT\r\n", 13), {}), (Lines{"!bare", "QUIT"}));
  EXPECT_EQ(readAll("NOOP\r\r\nQUIT\r\n", {}), (Lines{"!bare", "QUIT"}));
  EXPECT_EQ(readAll("\n\r\nQUIT\r\n", {}), (Lines{"!bare", "QUIT"}));
  EXPECT_EQ(readBytewise("NOOP\rX\r\nQUIT\r\n"), (Lines{"!bare", "QUIT"}));
  EXPECT_EQ(readAll("NOOP\r", {}), (Lines{}));  // a CR at the end may still become CRLF
}

TEST(LineReader, LimitIncludesTheCrlf) {
  const std::string fits(510, 'x');
  EXPECT_EQ(readAll(fits + "\r\n", {}), (Lines{fits}));
  EXPECT_EQ(readAll(fits + "x\r\nQUIT\r\n", {}), (Lines{"!long", "QUIT"}));
  EXPECT_EQ(readBytewise(fits + "\r\n"), (Lines{fits}));
  EXPECT_EQ(readBytewise(fits + "x\r\nQUIT\r\n"), (Lines{"!long", "QUIT"}));
}

TEST(LineReader, OverlongLineIsSkippedToItsCrlfKeepingSync) {
  // 100 KB without a CRLF, containing what looks like commands after bare LFs: all skipped.
  std::string junk;
  while (junk.size() < 100000) junk += "RCPT TO:<victim@example.org>\n";
  const std::string stream = "EHLO a\r\n" + junk + "\r\nNOOP\r\n";
  EXPECT_EQ(readAll(stream, {}), (Lines{"EHLO a", "!long", "NOOP"}));
  EXPECT_EQ(readAll(stream, {100, 5000, 60000}), (Lines{"EHLO a", "!long", "NOOP"}));
  EXPECT_EQ(readBytewise(stream), (Lines{"EHLO a", "!long", "NOOP"}));
}

TEST(LineReader, LimitCanBeRaisedForSaslResponses) {
  const std::string response(4000, 'A');
  EXPECT_EQ(readAll(response + "\r\n", {}), (Lines{"!long"}));
  EXPECT_EQ(readAll(response + "\r\n", {}, kMaxAuthLine), (Lines{response}));
  EXPECT_EQ(readBytewise(response + "\r\n", kMaxAuthLine), (Lines{response}));
}

TEST(LineReader, ResetForgetsThePartialLine) {
  LineReader reader;
  std::string_view a = "MAIL FROM:<plain@text>";
  EXPECT_FALSE(reader.next(a));
  reader.reset();
  EXPECT_FALSE(reader.hasPartialLine());
  std::string_view b = "\r\nEHLO x\r\n";
  auto first = reader.next(b);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->text, "");
  auto second = reader.next(b);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->text, "EHLO x");
}

}  // namespace
}  // namespace kuberelay::smtp
