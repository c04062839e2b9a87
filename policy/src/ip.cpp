#include "kuberelay/policy/ip.h"

#include <algorithm>
#include <charconv>
#include <set>
#include <tuple>

namespace kuberelay::policy {
namespace {

constexpr U128 kMax128{~0ull, ~0ull};
constexpr uint64_t kMappedPrefixLo = 0x0000ffff00000000ull;  // ::ffff:0:0/96

U128 add1(U128 v) {
  U128 r = v;
  if (++r.lo == 0) ++r.hi;
  return r;
}

U128 sub(U128 a, U128 b) {
  U128 r{a.hi - b.hi, a.lo - b.lo};
  if (a.lo < b.lo) --r.hi;
  return r;
}

// Mask with the top `len` bits of a `bits`-wide value set.
U128 prefixMask(unsigned len, unsigned bits) {
  if (len == 0) return U128{};
  if (bits == 32) {
    uint32_t m = len >= 32 ? ~0u : ~((1u << (32 - len)) - 1);
    return U128{0, m};
  }
  if (len >= 128) return kMax128;
  if (len >= 64) return U128{~0ull, len == 64 ? 0 : ~((1ull << (128 - len)) - 1)};
  return U128{~((1ull << (64 - len)) - 1), 0};
}

U128 andNot(U128 v, U128 mask) { return U128{v.hi & ~mask.hi, v.lo & ~mask.lo}; }
U128 bitAnd(U128 v, U128 mask) { return U128{v.hi & mask.hi, v.lo & mask.lo}; }
U128 bitOr(U128 v, U128 mask) { return U128{v.hi | mask.hi, v.lo | mask.lo}; }

std::optional<uint32_t> parseV4(std::string_view s) {
  uint32_t value = 0;
  int parts = 0;
  size_t pos = 0;
  for (;;) {
    size_t end = s.find('.', pos);
    std::string_view part = s.substr(pos, end == std::string_view::npos ? s.npos : end - pos);
    if (part.empty() || part.size() > 3) return std::nullopt;
    if (part.size() > 1 && part[0] == '0') return std::nullopt;  // no octal ambiguity
    unsigned octet = 0;
    for (char c : part) {
      if (c < '0' || c > '9') return std::nullopt;
      octet = octet * 10 + static_cast<unsigned>(c - '0');
    }
    if (octet > 255 || ++parts > 4) return std::nullopt;
    value = (value << 8) | octet;
    if (end == std::string_view::npos) break;
    pos = end + 1;
  }
  if (parts != 4) return std::nullopt;
  return value;
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::array<uint8_t, 16>> parseV6(std::string_view s) {
  std::array<uint16_t, 8> groups{};
  int count = 0;
  int gapAt = -1;
  size_t i = 0;
  if (s.size() < 2) return std::nullopt;
  if (s.substr(0, 2) == "::") {
    gapAt = 0;
    i = 2;
    if (i == s.size()) return std::array<uint8_t, 16>{};
  } else if (s[0] == ':') {
    return std::nullopt;
  }
  while (i < s.size()) {
    // Embedded IPv4 tail ("::ffff:1.2.3.4").
    size_t nextColon = s.find(':', i);
    std::string_view token =
        s.substr(i, nextColon == std::string_view::npos ? s.npos : nextColon - i);
    if (token.find('.') != std::string_view::npos) {
      if (nextColon != std::string_view::npos || count > 6) return std::nullopt;
      auto v4 = parseV4(token);
      if (!v4) return std::nullopt;
      groups[count++] = static_cast<uint16_t>(*v4 >> 16);
      groups[count++] = static_cast<uint16_t>(*v4 & 0xffff);
      i = s.size();
      break;
    }
    if (token.empty() || token.size() > 4 || count >= 8) return std::nullopt;
    unsigned g = 0;
    for (char c : token) {
      int h = hexValue(c);
      if (h < 0) return std::nullopt;
      g = g * 16 + static_cast<unsigned>(h);
    }
    groups[count++] = static_cast<uint16_t>(g);
    if (nextColon == std::string_view::npos) {
      i = s.size();
      break;
    }
    i = nextColon + 1;
    if (i < s.size() && s[i] == ':') {
      if (gapAt >= 0) return std::nullopt;  // only one "::"
      gapAt = count;
      ++i;
      if (i == s.size()) break;
    } else if (i == s.size()) {
      return std::nullopt;  // trailing single ':'
    }
  }
  if (gapAt < 0 && count != 8) return std::nullopt;
  if (gapAt >= 0 && count > 7) return std::nullopt;
  std::array<uint16_t, 8> full{};
  if (gapAt < 0) {
    full = groups;
  } else {
    int tail = count - gapAt;
    for (int k = 0; k < gapAt; ++k) full[k] = groups[k];
    for (int k = 0; k < tail; ++k) full[8 - tail + k] = groups[gapAt + k];
  }
  std::array<uint8_t, 16> bytes{};
  for (int k = 0; k < 8; ++k) {
    bytes[2 * k] = static_cast<uint8_t>(full[k] >> 8);
    bytes[2 * k + 1] = static_cast<uint8_t>(full[k] & 0xff);
  }
  return bytes;
}

U128 fromBytes(const std::array<uint8_t, 16>& b) {
  U128 v;
  for (int k = 0; k < 8; ++k) v.hi = (v.hi << 8) | b[k];
  for (int k = 8; k < 16; ++k) v.lo = (v.lo << 8) | b[k];
  return v;
}

std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

}  // namespace

IpAddress IpAddress::v6(U128 value) {
  if (value.hi == 0 && (value.lo & 0xffffffff00000000ull) == kMappedPrefixLo) {
    return v4(static_cast<uint32_t>(value.lo));
  }
  return IpAddress(IpFamily::V6, value);
}

IpAddress IpAddress::v6Bytes(const std::array<uint8_t, 16>& bytes) { return v6(fromBytes(bytes)); }

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  if (text.find(':') == std::string_view::npos) {
    auto v = parseV4(text);
    if (!v) return std::nullopt;
    return v4(*v);
  }
  size_t zone = text.find('%');
  if (zone != std::string_view::npos) {
    if (zone + 1 >= text.size()) return std::nullopt;
    text = text.substr(0, zone);
  }
  auto bytes = parseV6(text);
  if (!bytes) return std::nullopt;
  return v6Bytes(*bytes);
}

std::string IpAddress::toString() const {
  if (isV4()) {
    uint32_t v = v4Value();
    return std::to_string(v >> 24) + "." + std::to_string((v >> 16) & 0xff) + "." +
           std::to_string((v >> 8) & 0xff) + "." + std::to_string(v & 0xff);
  }
  std::array<uint16_t, 8> g{};
  for (int k = 0; k < 4; ++k) g[k] = static_cast<uint16_t>(value_.hi >> (48 - 16 * k));
  for (int k = 0; k < 4; ++k) g[4 + k] = static_cast<uint16_t>(value_.lo >> (48 - 16 * k));
  // RFC 5952: compress the longest run (>= 2) of zero groups, the first one on ties.
  int bestStart = -1, bestLen = 0;
  for (int k = 0; k < 8;) {
    if (g[k] != 0) {
      ++k;
      continue;
    }
    int start = k;
    while (k < 8 && g[k] == 0) ++k;
    if (k - start > bestLen && k - start >= 2) {
      bestStart = start;
      bestLen = k - start;
    }
  }
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (int k = 0; k < 8; ++k) {
    if (k == bestStart) {
      out += "::";
      k += bestLen - 1;
      continue;
    }
    if (!out.empty() && out.back() != ':') out += ':';
    bool started = false;
    for (int shift = 12; shift >= 0; shift -= 4) {
      unsigned nib = (g[k] >> shift) & 0xf;
      if (nib != 0 || started || shift == 0) {
        out += hex[nib];
        started = true;
      }
    }
  }
  return out;
}

IpRange IpRange::all(IpFamily family) {
  if (family == IpFamily::V4) return IpRange{IpAddress::v4(0), IpAddress::v4(0xffffffffu)};
  // The IPv4-mapped block is normalised to IPv4, so "all IPv6" is written as the raw bounds.
  return IpRange{IpAddress::v6(U128{}), IpAddress::v6(kMax128)};
}

U128 IpRange::span() const { return sub(last.value(), first.value()); }

std::string IpRange::toString() const {
  if (first == last) return first.toString();
  auto cidrs = toCidrs(*this);
  if (cidrs.size() == 1) return cidrs[0].first.toString() + "/" + std::to_string(cidrs[0].second);
  return first.toString() + "-" + last.toString();
}

IpRangeParse parseIpRange(std::string_view text) {
  IpRangeParse out;
  if (text.empty()) {
    out.error = "empty address range";
    return out;
  }
  auto familyName = [](std::string_view s) {
    return s.find(':') == std::string_view::npos ? "IPv4" : "IPv6";
  };
  auto notAddress = [&](std::string_view s) {
    return quoted(s) + " is not an " + familyName(s) + " address";
  };
  if (size_t dash = text.find('-'); dash != std::string_view::npos) {
    std::string_view a = text.substr(0, dash), b = text.substr(dash + 1);
    auto first = IpAddress::parse(a);
    if (!first) {
      out.error = notAddress(a);
      return out;
    }
    auto last = IpAddress::parse(b);
    if (!last) {
      out.error = notAddress(b);
      return out;
    }
    if (first->family() != last->family()) {
      out.error = quoted(text) + " mixes IPv4 and IPv6";
      return out;
    }
    if (*last < *first) {
      out.error = quoted(text) + ": the first address is greater than the last";
      return out;
    }
    out.range = IpRange{*first, *last};
    return out;
  }
  if (size_t slash = text.find('/'); slash != std::string_view::npos) {
    std::string_view a = text.substr(0, slash), lenText = text.substr(slash + 1);
    auto addr = IpAddress::parse(a);
    if (!addr) {
      out.error = notAddress(a);
      return out;
    }
    unsigned len = 0;
    auto [ptr, ec] = std::from_chars(lenText.data(), lenText.data() + lenText.size(), len);
    bool mapped = a.find(':') != std::string_view::npos && addr->isV4();
    unsigned maxLen = (a.find(':') != std::string_view::npos) ? 128 : 32;
    if (ec != std::errc() || ptr != lenText.data() + lenText.size() || lenText.empty() ||
        len > maxLen) {
      out.error = quoted(text) + ": prefix length must be 0-" + std::to_string(maxLen);
      return out;
    }
    if (mapped) {
      // ::ffff:10.0.0.0/104 is the IPv4 block 10.0.0.0/8.
      if (len < 96) {
        out.error = quoted(text) + ": an IPv4-mapped prefix must be /96 or longer";
        return out;
      }
      len -= 96;
    }
    U128 mask = prefixMask(len, addr->bits());
    U128 base = bitAnd(addr->value(), mask);
    U128 top = bitOr(base, andNot(addr->bits() == 32 ? U128{0, 0xffffffffu} : kMax128, mask));
    if (addr->isV4()) {
      out.range = IpRange{IpAddress::v4(static_cast<uint32_t>(base.lo)),
                          IpAddress::v4(static_cast<uint32_t>(top.lo))};
    } else {
      out.range = IpRange{IpAddress::v6(base), IpAddress::v6(top)};
      if (out.range->first.family() != out.range->last.family()) {
        // A v6 block that straddles the mapped IPv4 space: keep it as raw IPv6 bounds.
        out.error = quoted(text) + " overlaps the IPv4-mapped block; write IPv4 ranges as IPv4";
        out.range.reset();
      }
    }
    return out;
  }
  auto addr = IpAddress::parse(text);
  if (!addr) {
    out.error = notAddress(text);
    return out;
  }
  out.range = IpRange{*addr, *addr};
  return out;
}

std::vector<std::pair<IpAddress, unsigned>> toCidrs(const IpRange& range) {
  std::vector<std::pair<IpAddress, unsigned>> out;
  const unsigned bits = range.first.bits();
  U128 cur = range.first.value();
  const U128 last = range.last.value();
  for (;;) {
    // Largest block starting at cur that is aligned and does not pass last.
    unsigned len = bits;
    while (len > 0) {
      U128 mask = prefixMask(len - 1, bits);
      if (bitAnd(cur, mask) != cur) break;  // not aligned for a bigger block
      U128 top = bitOr(cur, andNot(bits == 32 ? U128{0, 0xffffffffu} : kMax128, mask));
      if (top > last) break;
      --len;
    }
    IpAddress a =
        range.first.isV4() ? IpAddress::v4(static_cast<uint32_t>(cur.lo)) : IpAddress::v6(cur);
    out.emplace_back(a, len);
    U128 blockTop =
        bitOr(cur, andNot(bits == 32 ? U128{0, 0xffffffffu} : kMax128, prefixMask(len, bits)));
    if (blockTop >= last) break;
    cur = add1(blockTop);
  }
  return out;
}

void RangeIndex::add(const IpRange& range, uint32_t id) {
  pending_.push_back({range, id});
  built_ = false;
}

namespace {

template <typename Key>
Key keyOf(const IpAddress& a) {
  if constexpr (std::is_same_v<Key, uint32_t>) {
    return a.v4Value();
  } else {
    return a.value();
  }
}

template <typename Key>
Key nextKey(Key k) {
  if constexpr (std::is_same_v<Key, uint32_t>) {
    return k + 1;
  } else {
    return add1(k);
  }
}

template <typename Key>
Key maxKey() {
  if constexpr (std::is_same_v<Key, uint32_t>) {
    return 0xffffffffu;
  } else {
    return kMax128;
  }
}

// Sweep over boundary points; for each elementary interval keep the smallest covering range.
template <typename Key, typename Table, typename Pending>
void buildTable(Table& table, const std::vector<const Pending*>& entries) {
  struct Event {
    Key at;
    bool open;  // closes sort before opens at the same point
    size_t index;
  };
  std::vector<Event> events;
  events.reserve(entries.size() * 2);
  for (size_t i = 0; i < entries.size(); ++i) {
    const auto& r = entries[i]->range;
    events.push_back({keyOf<Key>(r.first), true, i});
    Key last = keyOf<Key>(r.last);
    if (last != maxKey<Key>()) events.push_back({nextKey(last), false, i});
  }
  std::sort(events.begin(), events.end(), [](const Event& a, const Event& b) {
    if (a.at != b.at) return a.at < b.at;
    return a.open < b.open;
  });
  using Rank = std::tuple<U128, uint32_t, size_t>;  // span, id, index
  std::set<Rank> active;
  table.starts.clear();
  table.best.clear();
  table.starts.push_back(Key{});
  table.best.push_back(RangeIndex::kNone);
  for (size_t e = 0; e < events.size();) {
    Key at = events[e].at;
    for (; e < events.size() && events[e].at == at; ++e) {
      const auto* p = entries[events[e].index];
      Rank rank{p->range.span(), p->id, events[e].index};
      if (events[e].open) {
        active.insert(rank);
      } else {
        active.erase(rank);
      }
    }
    uint32_t best = active.empty() ? RangeIndex::kNone : std::get<1>(*active.begin());
    if (table.starts.back() == at) {
      table.best.back() = best;
    } else if (table.best.back() != best) {
      table.starts.push_back(at);
      table.best.push_back(best);
    }
  }
}

}  // namespace

void RangeIndex::build() {
  std::vector<const Pending*> v4, v6;
  for (const auto& p : pending_) (p.range.first.isV4() ? v4 : v6).push_back(&p);
  buildTable<uint32_t>(v4_, v4);
  buildTable<U128>(v6_, v6);
  built_ = true;
}

std::optional<uint32_t> RangeIndex::lookup(const IpAddress& address) const {
  auto find = [](const auto& table, auto key) -> std::optional<uint32_t> {
    if (table.starts.empty()) return std::nullopt;
    auto it = std::upper_bound(table.starts.begin(), table.starts.end(), key);
    uint32_t best = table.best[static_cast<size_t>(it - table.starts.begin()) - 1];
    if (best == kNone) return std::nullopt;
    return best;
  };
  if (address.isV4()) return find(v4_, address.v4Value());
  return find(v6_, address.value());
}

}  // namespace kuberelay::policy
