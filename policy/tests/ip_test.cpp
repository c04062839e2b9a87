#include "kuberelay/policy/ip.h"

#include <gtest/gtest.h>

#include <random>

#include "test_support.h"

namespace kuberelay::policy {
namespace {

using testing::ip;

TEST(IpAddress, ParsesAndFormatsIpv4) {
  EXPECT_EQ(ip("10.1.2.3").toString(), "10.1.2.3");
  EXPECT_EQ(ip("255.255.255.255").v4Value(), 0xffffffffu);
  for (const char* bad : {"10.0.0.300", "10.0.0", "10.0.0.0.1", "1.2.3.4.", "01.2.3.4", "a.b.c.d",
                          "", "1..2.3", " 1.2.3.4"}) {
    EXPECT_FALSE(IpAddress::parse(bad)) << bad;
  }
}

TEST(IpAddress, ParsesAndFormatsIpv6PerRfc5952) {
  EXPECT_EQ(ip("2001:DB8:0:0:0:0:0:1").toString(), "2001:db8::1");
  EXPECT_EQ(ip("::").toString(), "::");
  EXPECT_EQ(ip("::1").toString(), "::1");
  EXPECT_EQ(ip("2001:db8:0:1:1:1:1:1").toString(), "2001:db8:0:1:1:1:1:1");
  EXPECT_EQ(ip("2001:0:0:1:0:0:0:1").toString(), "2001:0:0:1::1");
  EXPECT_EQ(ip("fe80::39bd:88f7:6969:d223%11").toString(), "fe80::39bd:88f7:6969:d223");
  for (const char* bad : {":::", "1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", "g::1", "1:2:3:4:5:6:7",
                          "::1%", ":1:2", "1:2:"}) {
    EXPECT_FALSE(IpAddress::parse(bad)) << bad;
  }
}

TEST(IpAddress, Ipv4MappedIsTheSameClientAsIpv4) {
  EXPECT_EQ(ip("::ffff:10.1.2.3"), ip("10.1.2.3"));
  EXPECT_TRUE(ip("::ffff:a01:203").isV4());
  EXPECT_FALSE(ip("::a01:203").isV4());  // IPv4-compatible (deprecated) stays IPv6
}

TEST(IpRange, ParsesExchangeForms) {
  auto single = parseIpRange("192.168.1.1");
  ASSERT_TRUE(single.range);
  EXPECT_EQ(single.range->toString(), "192.168.1.1");
  auto cidr = parseIpRange("192.168.1.77/24");  // host bits set: Exchange accepts it
  ASSERT_TRUE(cidr.range);
  EXPECT_EQ(cidr.range->toString(), "192.168.1.0/24");
  auto range = parseIpRange("192.168.1.1-192.168.1.254");
  ASSERT_TRUE(range.range);
  EXPECT_EQ(range.range->toString(), "192.168.1.1-192.168.1.254");
  EXPECT_EQ(parseIpRange("10.0.0.0-10.0.0.255").range->toString(), "10.0.0.0/24");
  EXPECT_EQ(parseIpRange("2001:0DB8::CD3/60").range->toString(), "2001:db8::/60");
  EXPECT_EQ(parseIpRange("::ffff:10.0.0.0/104").range->toString(), "10.0.0.0/8");
  EXPECT_EQ(parseIpRange("0.0.0.0/0").range->toString(), "0.0.0.0/0");
  EXPECT_EQ(parseIpRange("::/0").range->toString(), "::/0");
}

TEST(IpRange, ErrorsNameTheBadText) {
  EXPECT_EQ(parseIpRange("10.0.0.300").error, "\"10.0.0.300\" is not an IPv4 address");
  EXPECT_EQ(parseIpRange("2001:db8::zz").error, "\"2001:db8::zz\" is not an IPv6 address");
  EXPECT_EQ(parseIpRange("10.0.0.0/33").error, "\"10.0.0.0/33\": prefix length must be 0-32");
  EXPECT_EQ(parseIpRange("10.0.0.9-10.0.0.1").error,
            "\"10.0.0.9-10.0.0.1\": the first address is greater than the last");
  EXPECT_EQ(parseIpRange("10.0.0.1-::1").error, "\"10.0.0.1-::1\" mixes IPv4 and IPv6");
  EXPECT_EQ(parseIpRange("").error, "empty address range");
}

TEST(IpRange, CidrDecompositionCoversExactlyTheRange) {
  auto r = *parseIpRange("10.0.0.3-10.0.0.200").range;
  auto cidrs = toCidrs(r);
  ASSERT_FALSE(cidrs.empty());
  EXPECT_EQ(cidrs.front().first, ip("10.0.0.3"));
  EXPECT_EQ(cidrs.front().second, 32u);
  uint64_t total = 0;
  for (const auto& [a, len] : cidrs) total += 1ull << (32 - len);
  EXPECT_EQ(total, 198u);
}

// Brute-force reference: scan every range, keep the smallest containing one (ties: lower id).
std::optional<uint32_t> reference(const std::vector<std::pair<IpRange, uint32_t>>& ranges,
                                  const IpAddress& a) {
  std::optional<uint32_t> best;
  U128 bestSpan{};
  for (const auto& [r, id] : ranges) {
    if (!r.contains(a)) continue;
    U128 span = r.span();
    if (!best || span < bestSpan || (span == bestSpan && id < *best)) {
      best = id;
      bestSpan = span;
    }
  }
  return best;
}

IpAddress randomV4(std::mt19937_64& rng, uint32_t base, uint32_t spread) {
  return IpAddress::v4(base + static_cast<uint32_t>(rng() % spread));
}

TEST(RangeIndex, MatchesBruteForceOnRandomIpv4Ranges) {
  std::mt19937_64 rng(42);
  for (int round = 0; round < 20; ++round) {
    std::vector<std::pair<IpRange, uint32_t>> ranges;
    RangeIndex index;
    const uint32_t base = 0x0a000000;  // 10.0.0.0, a dense area so ranges overlap a lot
    for (uint32_t id = 0; id < 200; ++id) {
      IpRange r;
      switch (rng() % 3) {
        case 0: {  // CIDR
          unsigned len = 16 + static_cast<unsigned>(rng() % 17);
          auto parsed =
              parseIpRange(randomV4(rng, base, 1u << 16).toString() + "/" + std::to_string(len));
          r = *parsed.range;
          break;
        }
        case 1: {  // first-last
          IpAddress a = randomV4(rng, base, 1u << 16), b = randomV4(rng, base, 1u << 16);
          r = a <= b ? IpRange{a, b} : IpRange{b, a};
          break;
        }
        default: {  // single address
          IpAddress a = randomV4(rng, base, 1u << 16);
          r = IpRange{a, a};
        }
      }
      ranges.emplace_back(r, id);
      index.add(r, id);
    }
    index.build();
    for (int probe = 0; probe < 5000; ++probe) {
      IpAddress a = randomV4(rng, base - 256, (1u << 16) + 512);
      ASSERT_EQ(index.lookup(a), reference(ranges, a)) << a.toString();
    }
    // Every range boundary and its neighbours.
    for (const auto& [r, id] : ranges) {
      for (uint32_t v :
           {r.first.v4Value() - 1, r.first.v4Value(), r.last.v4Value(), r.last.v4Value() + 1}) {
        IpAddress a = IpAddress::v4(v);
        ASSERT_EQ(index.lookup(a), reference(ranges, a)) << a.toString();
      }
    }
  }
}

TEST(RangeIndex, MatchesBruteForceOnRandomIpv6Ranges) {
  std::mt19937_64 rng(7);
  auto randomV6 = [&](uint64_t spread) {
    return IpAddress::v6(U128{0x20010db800000000ull, rng() % spread});
  };
  std::vector<std::pair<IpRange, uint32_t>> ranges;
  RangeIndex index;
  for (uint32_t id = 0; id < 300; ++id) {
    IpAddress a = randomV6(1ull << 20), b = randomV6(1ull << 20);
    IpRange r = a <= b ? IpRange{a, b} : IpRange{b, a};
    if (id % 5 == 0) r = IpRange{a, a};
    ranges.emplace_back(r, id);
    index.add(r, id);
  }
  index.add(IpRange::all(IpFamily::V6), 1000);
  ranges.emplace_back(IpRange::all(IpFamily::V6), 1000);
  index.build();
  for (int probe = 0; probe < 20000; ++probe) {
    IpAddress a = randomV6(1ull << 21);
    ASSERT_EQ(index.lookup(a), reference(ranges, a)) << a.toString();
  }
  EXPECT_EQ(index.lookup(ip("::1")), 1000u);
  EXPECT_EQ(index.lookup(ip("10.0.0.1")), std::nullopt);  // IPv4 is a separate family
}

TEST(RangeIndex, CidrMatchIsLongestPrefix) {
  RangeIndex index;
  index.add(*parseIpRange("0.0.0.0/0").range, 0);
  index.add(*parseIpRange("192.168.0.0/16").range, 1);
  index.add(*parseIpRange("192.168.1.0/24").range, 2);
  index.add(*parseIpRange("192.168.1.75").range, 3);
  index.build();
  EXPECT_EQ(index.lookup(ip("192.168.1.75")), 3u);
  EXPECT_EQ(index.lookup(ip("192.168.1.100")), 2u);
  EXPECT_EQ(index.lookup(ip("192.168.2.1")), 1u);
  EXPECT_EQ(index.lookup(ip("8.8.8.8")), 0u);
  EXPECT_EQ(index.lookup(ip("::ffff:192.168.1.75")), 3u);
}

TEST(RangeIndex, EqualRangesTieOnLowestId) {
  RangeIndex index;
  index.add(*parseIpRange("10.0.0.0/8").range, 7);
  index.add(*parseIpRange("10.0.0.0/8").range, 3);
  index.build();
  EXPECT_EQ(index.lookup(ip("10.9.9.9")), 3u);
}

}  // namespace
}  // namespace kuberelay::policy
