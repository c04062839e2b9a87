// libFuzzer: a PolicyResponse from the policy channel, as the relay handles it: protobuf
// decoding, then every manifest through the decoder, the compiler and prepare() (OpenSSL loads
// the TLS material). The snapshot must be refused or prepared; it must never crash the relay.
#include <cstdint>
#include <string>
#include <string_view>

#include <google/protobuf/stubs/logging.h>

#include "kuberelay/policy/v1/policy.pb.h"
#include "policy_store.h"

// protobuf logs every string field with invalid UTF-8 it refuses: noise at fuzzing rates.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(
      [](google::protobuf::LogLevel, const char*, int, const std::string&) {});
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 256 * 1024) return 0;
  kuberelay::policy::v1::PolicyResponse response;
  if (!response.ParseFromArray(data, static_cast<int>(size))) return 0;
  kuberelay::relay::ReceivedSnapshot received;
  received.version = response.snapshot().version();
  received.pool = response.snapshot().pool();
  for (const auto& o : response.snapshot().objects()) {
    received.objects.push_back({o.kind(), o.namespace_(), o.name(), o.generation(), o.manifest()});
  }
  auto load = kuberelay::relay::prepareReceived(received, "default");
  // A mutated snapshot rarely carries the version it compiles to: retry once with it, so that
  // prepare() (the TLS material through OpenSSL) is reached too.
  static constexpr std::string_view kCompiledTo = "the snapshot compiled to ";
  if (!load.policy && load.error.rfind(kCompiledTo, 0) == 0) {
    std::string_view rest = std::string_view(load.error).substr(kCompiledTo.size());
    received.version = std::string(rest.substr(0, rest.find(',')));
    load = kuberelay::relay::prepareReceived(received, "default");
  }
  return 0;
}
