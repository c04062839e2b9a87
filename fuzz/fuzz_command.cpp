// libFuzzer: SMTP command lines and their argument parsers (MAIL, RCPT, BDAT, AUTH).
#include <cstdint>
#include <string_view>

#include "kuberelay/smtp/command.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view line(reinterpret_cast<const char*>(data), size);
  using namespace kuberelay::smtp;
  Command cmd = parseCommand(line);
  MailFromArguments mail;
  (void)parseMailFrom(cmd.argument, mail);
  RcptToArguments rcpt;
  (void)parseRcptTo(cmd.argument, true, rcpt);
  (void)parseRcptTo(cmd.argument, false, rcpt);
  BdatArguments bdat;
  (void)parseBdat(cmd.argument, bdat);
  AuthArguments auth;
  (void)parseAuth(cmd.argument, auth);
  return 0;
}
