#include "proxy_protocol.h"

#include <gtest/gtest.h>

namespace kuberelay::relay {
namespace {

TEST(ProxyProtocol, Version1) {
  auto p = parseProxyHeader("PROXY TCP4 192.0.2.1 198.51.100.1 51234 25\r\nEHLO x\r\n");
  ASSERT_EQ(p.status, ProxyStatus::Complete);
  EXPECT_EQ(p.consumed, 44u);
  EXPECT_EQ(p.header.source.toString(), "192.0.2.1");
  EXPECT_EQ(p.header.sourcePort, 51234);
  EXPECT_EQ(p.header.destinationPort, 25);
  auto v6 = parseProxyHeader("PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n");
  ASSERT_EQ(v6.status, ProxyStatus::Complete);
  EXPECT_EQ(v6.header.source.toString(), "2001:db8::1");
  auto unknown = parseProxyHeader("PROXY UNKNOWN\r\n");
  ASSERT_EQ(unknown.status, ProxyStatus::Complete);
  EXPECT_TRUE(unknown.header.useSocketAddresses);
}

TEST(ProxyProtocol, Version2) {
  const std::string v2(
      "\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c\xc0\x00\x02\x01\xc6\x33\x64\x01\xc8\x22\x00\x19", 28);
  auto p = parseProxyHeader(v2 + "EHLO");
  ASSERT_EQ(p.status, ProxyStatus::Complete);
  EXPECT_EQ(p.consumed, 28u);
  EXPECT_EQ(p.header.source.toString(), "192.0.2.1");
  EXPECT_EQ(p.header.destination.toString(), "198.51.100.1");
  EXPECT_EQ(p.header.sourcePort, 0xc822);
  EXPECT_EQ(p.header.destinationPort, 25);
  EXPECT_EQ(parseProxyHeader(v2.substr(0, 20)).status, ProxyStatus::NeedMore);
}

TEST(ProxyProtocol, RefusesWhatIsNotAHeader) {
  EXPECT_EQ(parseProxyHeader("EHLO client\r\n").status, ProxyStatus::Invalid);
  EXPECT_EQ(parseProxyHeader("PROXY TCP4 192.0.2.1 ::1 1 2\r\n").status, ProxyStatus::Invalid);
  EXPECT_EQ(parseProxyHeader("PROXY TCP4 192.0.2.1 192.0.2.2 01 2\r\n").status,
            ProxyStatus::Invalid);
  EXPECT_EQ(parseProxyHeader("PROXY TCP4 192.0.2.1 192.0.2.2 1 65536\r\n").status,
            ProxyStatus::Invalid);
  EXPECT_EQ(parseProxyHeader(std::string("PROXY ") + std::string(200, 'x')).status,
            ProxyStatus::Invalid);
  EXPECT_EQ(parseProxyHeader("PROX").status, ProxyStatus::NeedMore);
  EXPECT_TRUE(startsLikeProxyHeader("PROXY TCP4"));
  EXPECT_FALSE(startsLikeProxyHeader("EHLO"));
}

}  // namespace
}  // namespace kuberelay::relay
