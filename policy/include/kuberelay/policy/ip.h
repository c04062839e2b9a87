// NAME
//   ip.h - IPv4/IPv6 addresses, address ranges, and most-specific range matching
// DESCRIPTION
//   Remote IP ranges in a ReceiveConnector are written the way Exchange accepts them: a single
//   address, a CIDR block, or a "first-last" range. An IPv4-mapped IPv6 address
//   (::ffff:a.b.c.d) is the same client as a.b.c.d, so it is normalised to IPv4 on parse.
//   RangeIndex answers "which of these ranges is the most specific one containing this
//   address" in O(log n): for CIDR blocks that is exactly longest-prefix match.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kuberelay::policy {

// 128-bit unsigned integer used as the key space of IPv6 (and of IPv4 in its low 32 bits).
struct U128 {
  uint64_t hi = 0;
  uint64_t lo = 0;
  friend constexpr auto operator<=>(const U128&, const U128&) = default;
  friend constexpr bool operator==(const U128&, const U128&) = default;
};

enum class IpFamily : uint8_t { V4, V6 };

class IpAddress {
public:
  IpAddress() = default;
  static IpAddress v4(uint32_t value) { return IpAddress(IpFamily::V4, U128{0, value}); }
  static IpAddress v6(U128 value);  // normalises IPv4-mapped addresses to IPv4
  static IpAddress v6Bytes(const std::array<uint8_t, 16>& bytes);

  // Parses "10.1.2.3", "2001:db8::1", "::ffff:10.1.2.3", "fe80::1%eth0" (zone ignored).
  // No brackets, no port.
  static std::optional<IpAddress> parse(std::string_view text);

  IpFamily family() const { return family_; }
  bool isV4() const { return family_ == IpFamily::V4; }
  U128 value() const { return value_; }
  uint32_t v4Value() const { return static_cast<uint32_t>(value_.lo); }
  unsigned bits() const { return isV4() ? 32 : 128; }
  std::string toString() const;

  friend auto operator<=>(const IpAddress&, const IpAddress&) = default;
  friend bool operator==(const IpAddress&, const IpAddress&) = default;

private:
  IpAddress(IpFamily family, U128 value) : value_(value), family_(family) {}
  U128 value_{};
  IpFamily family_ = IpFamily::V4;
};

// An inclusive range [first, last] of one family.
struct IpRange {
  IpAddress first;
  IpAddress last;

  static IpRange all(IpFamily family);
  bool contains(const IpAddress& a) const {
    return a.family() == first.family() && first <= a && a <= last;
  }
  bool containsRange(const IpRange& r) const {
    return r.first.family() == first.family() && first <= r.first && r.last <= last;
  }
  bool overlaps(const IpRange& r) const {
    return r.first.family() == first.family() && first <= r.last && r.first <= last;
  }
  // Number of addresses minus one (so "all IPv6" fits).
  U128 span() const;
  // The canonical text: "a" for one address, "a/len" when the range is a CIDR block,
  // otherwise "a-b".
  std::string toString() const;
  friend auto operator<=>(const IpRange&, const IpRange&) = default;
  friend bool operator==(const IpRange&, const IpRange&) = default;
};

struct IpRangeParse {
  std::optional<IpRange> range;
  std::string error;  // set when !range, e.g. "\"10.0.0.300\" is not an IPv4 address"
};

// Parses one remoteIPRanges item: address, CIDR (host bits may be set, as Exchange allows),
// or "first-last".
IpRangeParse parseIpRange(std::string_view text);

// Splits [first, last] into the minimal list of CIDR blocks (for display and for tests).
std::vector<std::pair<IpAddress, unsigned>> toCidrs(const IpRange& range);

// Most-specific range lookup. Entries are (range, id); lookup returns the id of the smallest
// range containing the address, ties broken by the smaller id. Ranges may nest or overlap
// arbitrarily. Built once, then immutable; lookup is a binary search over the elementary
// intervals of all range boundaries, so it costs O(log n) whatever the ranges look like.
class RangeIndex {
public:
  void add(const IpRange& range, uint32_t id);
  void build();
  std::optional<uint32_t> lookup(const IpAddress& address) const;
  // The range of the entry returned by lookup (valid after build()).
  bool empty() const { return v4_.starts.empty() && v6_.starts.empty(); }

private:
  template <typename Key>
  struct Table {
    std::vector<Key> starts;     // sorted start of each elementary interval
    std::vector<uint32_t> best;  // best id for that interval, kNone when uncovered
  };
  struct Pending {
    IpRange range;
    uint32_t id;
  };
  std::vector<Pending> pending_;
  Table<uint32_t> v4_;
  Table<U128> v6_;
  bool built_ = false;

public:
  static constexpr uint32_t kNone = 0xffffffffu;
};

}  // namespace kuberelay::policy
