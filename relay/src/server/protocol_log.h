// NAME
//   protocol_log.h - Exchange-style SMTP protocol log for connectors with protocolLogging: Verbose
// DESCRIPTION
//   The format of Exchange's receive protocol log (exchange-semantics.md §1.10): CSV with
//   date-time, connector-id, session-id, sequence-number, local-endpoint, remote-endpoint,
//   event (+ connect, - disconnect, < received, > sent, * information), data, context.
//   With a directory, files RECV<yyyymmdd>-<n>.log are written and a new one is started each
//   day or past maxFileBytes; without one, lines go to standard output (the container's log).
//   Passwords never reach it (the session masks AUTH) and message content is never logged.
#pragma once

#include <cstdio>
#include <filesystem>
#include <mutex>
#include <string>
#include <string_view>

namespace kuberelay::relay {

class ProtocolLog {
public:
  explicit ProtocolLog(std::filesystem::path dir = {}, uint64_t maxFileBytes = 64ull << 20);
  ~ProtocolLog();
  ProtocolLog(const ProtocolLog&) = delete;
  ProtocolLog& operator=(const ProtocolLog&) = delete;

  void write(std::string_view connector, std::string_view session, uint32_t sequence,
             std::string_view local, std::string_view remote, char event, std::string_view data,
             std::string_view context = {});

private:
  void openFor(const std::string& day);
  std::filesystem::path dir_;
  uint64_t maxFileBytes_;
  std::mutex mutex_;
  std::FILE* file_ = nullptr;
  std::string day_;
  uint64_t written_ = 0;
  int index_ = 0;
};

std::string newSessionId();

}  // namespace kuberelay::relay
