// libFuzzer: a whole SMTP session fed arbitrary client bytes (line reader, AUTH decoding, DATA
// and BDAT decoders, the state machine) against the seed 004 policy, with a next hop that
// accepts everything. The first input byte chooses how the stream is split into reads.
#include <cstdint>
#include <string_view>

#include "kuberelay/policy/compiler.h"
#include "kuberelay/policy/credentials.h"
#include "kuberelay/policy/manifest.h"
#include "kuberelay/smtp/session.h"

using namespace kuberelay;

namespace {
policy::SnapshotPtr snapshot() {
  static policy::SnapshotPtr s =
      policy::compile(
          policy::loadManifestDirectory(KUBERELAY_SOURCE_DIR "/examples/004-ip-restriction-flag"))
          .snapshot;
  return s;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t step = 1 + data[0] % 64;
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  auto ip = *policy::IpAddress::parse(data[0] & 1 ? "127.0.0.40" : "127.0.0.41");
  smtp::Session session(
      policy::SessionPolicy::connect(snapshot(), {*policy::IpAddress::parse("0.0.0.0"), 2525, ip}),
      {"relay.fuzz", "127.0.0.40"});
  smtp::Output out;
  session.start(out);
  for (size_t pos = 0; pos < in.size() && !session.closed();) {
    out.clear();
    session.receive(in.substr(pos, step), out);
    pos += step;
    // Answer whatever the session waits for, as the relay would.
    for (int rounds = 0;
         rounds < 64 && !session.closed() && session.waiting() != smtp::Waiting::Nothing;
         ++rounds) {
      smtp::Output next;
      switch (session.waiting()) {
        case smtp::Waiting::TlsHandshake:
          session.onTlsEstablished(next);
          break;
        case smtp::Waiting::Credentials:
          session.onCredentials(nullptr, next);
          break;
        case smtp::Waiting::NextHop:
          session.onForwardReply(policy::Reply{250, "2.0.0", "OK"}, next);
          break;
        case smtp::Waiting::Nothing:
          break;
      }
    }
  }
  return 0;
}
