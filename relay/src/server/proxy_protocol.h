// NAME
//   proxy_protocol.h - HAProxy PROXY protocol v1 and v2 headers (pure parser)
// DESCRIPTION
//   Behind a cloud load balancer the socket peer is the balancer; the PROXY header carries the
//   real client address. The relay honours it only from proxyProtocol.trustedRanges; from anyone
//   else a header is refused (see server.cpp). The parser never reads past `bytes` and bounds
//   the header size (v1: 107 octets, v2: 16 + 536).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "kuberelay/policy/ip.h"

namespace kuberelay::relay {

struct ProxyHeader {
  bool useSocketAddresses = false;  // v1 UNKNOWN, v2 LOCAL or UNSPEC: health checks and the like
  policy::IpAddress source;
  uint16_t sourcePort = 0;
  policy::IpAddress destination;
  uint16_t destinationPort = 0;
};

enum class ProxyStatus { NeedMore, Complete, Invalid };

struct ProxyParse {
  ProxyStatus status = ProxyStatus::NeedMore;
  size_t consumed = 0;  // octets of the header, when Complete
  ProxyHeader header;
  std::string error;  // when Invalid
};

inline constexpr size_t kProxyV1MaxLength = 107;
inline constexpr size_t kProxyV2MaxAddressLength = 536;

ProxyParse parseProxyHeader(std::string_view bytes);
// True when `bytes` (the first octets a client sent) begin like a PROXY header of either version.
bool startsLikeProxyHeader(std::string_view bytes);

}  // namespace kuberelay::relay
