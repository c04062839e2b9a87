// NAME
//   base64.h - RFC 4648 base64: strict decoding of SASL responses, and encoding (AUTH to the next
//   hop)
// DESCRIPTION
//   Standard alphabet, padding required, no whitespace: RFC 4954 §4 responses are exactly one
//   base64 string. Anything else is a decoding error (501 5.5.2).
#pragma once

#include <string>
#include <string_view>

namespace kuberelay::smtp {

// Decodes `in` into `out` (replacing its contents). Returns false on malformed input.
bool decodeBase64(std::string_view in, std::string& out);
// Standard alphabet, with padding.
std::string encodeBase64(std::string_view in);

}  // namespace kuberelay::smtp
