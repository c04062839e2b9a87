#include "header_firewall.h"

#include <gtest/gtest.h>

#include <random>

namespace kuberelay::relay {
namespace {

using namespace policy::right;

const std::string kMessage =
    "Received: from evil.example by mx.example;\r\n"
    "\tThu, 1 Jan 2026 00:00:00 +0000\r\n"
    "From: a@example.com\r\n"
    "Resent-From: b@example.com\r\n"
    "X-MS-Exchange-Organization-AuthAs: Internal\r\n"
    "x-ms-exchange-forest-rulesexecuted: yes\r\n"
    "Subject: hello\r\n"
    " world\r\n"
    "\r\n"
    "Received: in the body stays\r\n"
    "X-MS-Exchange-Organization-AuthAs: body too\r\n";

std::string run(policy::Rights rights, const std::string& message, size_t step) {
  HeaderFirewall fw(rights);
  std::string out;
  for (size_t pos = 0; pos < message.size(); pos += step) {
    std::string headers;
    std::string_view rest = fw.feed(std::string_view(message).substr(pos, step), headers);
    out += headers;
    out += rest;
  }
  std::string tail;
  fw.finish(tail);
  return out + tail;
}

TEST(HeaderFirewall, RemovesUntrustedRoutingAndOrganizationHeadersOnly) {
  const std::string expected =
      "From: a@example.com\r\n"
      "Subject: hello\r\n"
      " world\r\n"
      "\r\n"
      "Received: in the body stays\r\n"
      "X-MS-Exchange-Organization-AuthAs: body too\r\n";
  for (size_t step : {1u, 2u, 3u, 7u, 64u, 4096u}) {
    EXPECT_EQ(run(kSubmit, kMessage, step), expected) << "step " << step;
  }
}

TEST(HeaderFirewall, EachRightKeepsItsHeaders) {
  std::string routing = run(kAcceptRoutingHeaders, kMessage, 5);
  EXPECT_NE(routing.find("Received: from evil.example"), std::string::npos);
  EXPECT_NE(routing.find("\tThu, 1 Jan 2026"), std::string::npos) << "folded line kept with it";
  EXPECT_NE(routing.find("Resent-From"), std::string::npos);
  EXPECT_EQ(routing.find("AuthAs: Internal"), std::string::npos);
  std::string org = run(kAcceptOrganizationHeaders, kMessage, 5);
  EXPECT_NE(org.find("AuthAs: Internal"), std::string::npos);
  EXPECT_EQ(org.find("rulesexecuted"), std::string::npos);
  HeaderFirewall all(kAcceptRoutingHeaders | kAcceptOrganizationHeaders | kAcceptForestHeaders);
  EXPECT_TRUE(all.passThrough());
  EXPECT_EQ(
      run(kAcceptRoutingHeaders | kAcceptOrganizationHeaders | kAcceptForestHeaders, kMessage, 3),
      kMessage);
}

TEST(HeaderFirewall, RandomSplitsGiveTheSameResult) {
  std::mt19937 rng(3);
  const std::string once = run(0, kMessage, kMessage.size());
  for (int i = 0; i < 200; ++i) {
    HeaderFirewall fw(0);
    std::string out;
    size_t pos = 0;
    while (pos < kMessage.size()) {
      size_t n = 1 + rng() % 9;
      std::string headers;
      std::string_view rest = fw.feed(std::string_view(kMessage).substr(pos, n), headers);
      out += headers;
      out += rest;
      pos += n;
    }
    fw.finish(out);
    ASSERT_EQ(out, once);
  }
}

TEST(HeaderFirewall, MessageWithoutBody) {
  EXPECT_EQ(run(0, "Received: x\r\nSubject: s\r\n", 4), "Subject: s\r\n");
  EXPECT_EQ(run(0, "Subject: no final newline", 4), "Subject: no final newline");
}

}  // namespace
}  // namespace kuberelay::relay
