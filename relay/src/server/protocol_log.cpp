#include "protocol_log.h"

#include "log.h"

#include <atomic>
#include <chrono>
#include <ctime>
#include <random>

namespace kuberelay::relay {
namespace {

void appendCsv(std::string& out, std::string_view v) {
  bool quote = v.find_first_of(",\"\r\n") != std::string_view::npos;
  if (quote) out += '"';
  for (char c : v) {
    if (c == '"') out += '"';
    out += (c == '\r' || c == '\n') ? ' ' : c;
  }
  if (quote) out += '"';
}

}  // namespace

std::string newSessionId() {
  static std::atomic<uint64_t> counter{0};
  static const uint64_t base = (uint64_t(std::random_device{}()) << 32) ^ std::random_device{}();
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%016llX",
                static_cast<unsigned long long>(base + (++counter) * 0x9E3779B97F4A7C15ull));
  return buf;
}

ProtocolLog::ProtocolLog(std::filesystem::path dir, uint64_t maxFileBytes)
    : dir_(std::move(dir)), maxFileBytes_(maxFileBytes) {}

ProtocolLog::~ProtocolLog() {
  if (file_ && file_ != stdout) std::fclose(file_);
}

void ProtocolLog::openFor(const std::string& day) {
  if (file_ && file_ != stdout) std::fclose(file_);
  file_ = nullptr;
  if (day != day_) index_ = 0;
  day_ = day;
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  std::string name = "RECV" + day + "-" + std::to_string(++index_) + ".log";
  file_ = std::fopen((dir_ / name).c_str(), "a");
  written_ = 0;
  if (file_) {
    written_ += static_cast<uint64_t>(std::fprintf(
        file_,
        "#Software: KubeRelay\n#Version: 1\n#Log-Type: SMTP Receive Protocol Log\n#Date: %s\n"
        "#Fields: date-time,connector-id,session-id,sequence-number,local-endpoint,"
        "remote-endpoint,event,data,context\n",
        day.c_str()));
  }
}

void ProtocolLog::write(std::string_view connector, std::string_view session, uint32_t sequence,
                        std::string_view local, std::string_view remote, char event,
                        std::string_view data, std::string_view context) {
  std::string day;
  std::string line = isoTimestamp(&day);
  line += ',';
  appendCsv(line, connector);
  line += ',';
  line += session;
  line += ',' + std::to_string(sequence) + ',';
  appendCsv(line, local);
  line += ',';
  appendCsv(line, remote);
  line += ',';
  line += event;
  line += ',';
  appendCsv(line, data);
  line += ',';
  appendCsv(line, context);
  line += '\n';
  std::lock_guard lock(mutex_);
  if (dir_.empty()) {
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fflush(stdout);
    return;
  }
  if (!file_ || day != day_ || written_ >= maxFileBytes_) openFor(day);
  if (!file_) return;
  written_ += std::fwrite(line.data(), 1, line.size(), file_);
  std::fflush(file_);
}

}  // namespace kuberelay::relay
