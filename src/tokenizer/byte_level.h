// GPT-2's reversible byte <-> printable character mapping used by byte-level BPE.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace tv::tok {

// Code point standing for byte b: printable Latin-1 bytes map to themselves, the other 68 bytes to
// U+0100.. in byte order.
uint32_t byte_to_char(uint8_t b);
// The byte a code point stands for, or -1 when it is not one of the 256 mapped characters.
int char_to_byte(uint32_t cp);
// UTF-8 of byte_to_char(b) (1 or 2 bytes).
const std::string& byte_char_utf8(uint8_t b);

// Maps raw bytes to their byte-level string (each byte becomes one character).
std::string bytes_to_byte_level(std::string_view bytes);
// Reverse mapping. Returns false (and leaves *out partly written) if s holds a character outside
// the 256 mapped ones.
bool byte_level_to_bytes(std::string_view s, std::string* out);

}  // namespace tv::tok
