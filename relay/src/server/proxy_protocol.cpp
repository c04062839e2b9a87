#include "proxy_protocol.h"

#include <array>
#include <charconv>

namespace kuberelay::relay {
namespace {

constexpr std::string_view kV2Signature("\r\n\r\n\0\r\nQUIT\n", 12);

ProxyParse invalid(std::string error) {
  ProxyParse p;
  p.status = ProxyStatus::Invalid;
  p.error = std::move(error);
  return p;
}

bool parsePort(std::string_view s, uint16_t& port) {
  unsigned v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || s.empty() || v > 65535 ||
      (s.size() > 1 && s[0] == '0')) {
    return false;
  }
  port = static_cast<uint16_t>(v);
  return true;
}

ProxyParse parseV1(std::string_view bytes) {
  size_t end = bytes.find("\r\n");
  if (end == std::string_view::npos) {
    if (bytes.size() >= kProxyV1MaxLength) return invalid("PROXY v1 header too long");
    return {};
  }
  if (end + 2 > kProxyV1MaxLength) return invalid("PROXY v1 header too long");
  std::string_view line = bytes.substr(0, end);
  std::array<std::string_view, 6> parts;
  size_t n = 0, pos = 0;
  while (pos <= line.size() && n < parts.size()) {
    size_t space = line.find(' ', pos);
    if (space == std::string_view::npos) space = line.size();
    parts[n++] = line.substr(pos, space - pos);
    pos = space + 1;
  }
  if (pos <= line.size()) return invalid("PROXY v1 header has too many fields");
  ProxyParse p;
  p.status = ProxyStatus::Complete;
  p.consumed = end + 2;
  if (n >= 2 && parts[1] == "UNKNOWN") {
    p.header.useSocketAddresses = true;
    return p;
  }
  if (n != 6 || (parts[1] != "TCP4" && parts[1] != "TCP6")) {
    return invalid("PROXY v1 header is not \"PROXY TCP4|TCP6 src dst sport dport\"");
  }
  auto src = policy::IpAddress::parse(parts[2]);
  auto dst = policy::IpAddress::parse(parts[3]);
  bool v6 = parts[1] == "TCP6";
  bool familyOk = src && dst && (parts[2].find(':') != std::string_view::npos) == v6 &&
                  (parts[3].find(':') != std::string_view::npos) == v6 &&
                  parts[2].find('%') == std::string_view::npos;
  if (!familyOk || !parsePort(parts[4], p.header.sourcePort) ||
      !parsePort(parts[5], p.header.destinationPort)) {
    return invalid("PROXY v1 header has bad addresses or ports");
  }
  p.header.source = *src;
  p.header.destination = *dst;
  return p;
}

uint16_t be16(const unsigned char* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }

ProxyParse parseV2(std::string_view bytes) {
  if (bytes.size() < 16) return {};
  const auto* b = reinterpret_cast<const unsigned char*>(bytes.data());
  if ((b[12] >> 4) != 2) return invalid("PROXY v2 header has an unknown version");
  unsigned command = b[12] & 0x0f;
  if (command > 1) return invalid("PROXY v2 header has an unknown command");
  uint16_t length = be16(b + 14);
  if (length > kProxyV2MaxAddressLength) return invalid("PROXY v2 header too long");
  if (bytes.size() < 16u + length) return {};
  ProxyParse p;
  p.status = ProxyStatus::Complete;
  p.consumed = 16u + length;
  unsigned family = b[13] >> 4, transport = b[13] & 0x0f;
  if (command == 0 || family == 0) {  // LOCAL, or UNSPEC: not a proxied client
    p.header.useSocketAddresses = true;
    return p;
  }
  if (transport != 1) return invalid("PROXY v2 header is not TCP");
  const unsigned char* a = b + 16;
  if (family == 1) {
    if (length < 12) return invalid("PROXY v2 IPv4 address block too short");
    auto v4 = [](const unsigned char* q) {
      return policy::IpAddress::v4((uint32_t(q[0]) << 24) | (uint32_t(q[1]) << 16) |
                                   (uint32_t(q[2]) << 8) | q[3]);
    };
    p.header.source = v4(a);
    p.header.destination = v4(a + 4);
    p.header.sourcePort = be16(a + 8);
    p.header.destinationPort = be16(a + 10);
    return p;
  }
  if (family == 2) {
    if (length < 36) return invalid("PROXY v2 IPv6 address block too short");
    std::array<uint8_t, 16> src{}, dst{};
    for (int i = 0; i < 16; ++i) {
      src[i] = a[i];
      dst[i] = a[16 + i];
    }
    p.header.source = policy::IpAddress::v6Bytes(src);
    p.header.destination = policy::IpAddress::v6Bytes(dst);
    p.header.sourcePort = be16(a + 32);
    p.header.destinationPort = be16(a + 34);
    return p;
  }
  return invalid("PROXY v2 header has an unsupported address family");
}

}  // namespace

bool startsLikeProxyHeader(std::string_view bytes) {
  if (bytes.empty()) return false;
  std::string_view v1 = "PROXY ";
  size_t n = std::min(bytes.size(), v1.size());
  if (bytes.substr(0, n) == v1.substr(0, n)) return true;
  n = std::min(bytes.size(), kV2Signature.size());
  return bytes.substr(0, n) == kV2Signature.substr(0, n) && bytes.size() >= 4;
}

ProxyParse parseProxyHeader(std::string_view bytes) {
  if (bytes.size() >= 6 && bytes.substr(0, 6) == "PROXY ") return parseV1(bytes);
  if (bytes.size() >= kV2Signature.size() && bytes.substr(0, kV2Signature.size()) == kV2Signature) {
    return parseV2(bytes);
  }
  if (startsLikeProxyHeader(bytes)) return {};  // a prefix of either: wait for more
  return invalid("the connection did not start with a PROXY header");
}

}  // namespace kuberelay::relay
