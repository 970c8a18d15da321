#include "tokenizer/byte_level.h"

#include <array>

#include "tokenizer/unicode.h"

namespace tv::tok {
namespace {

struct Maps {
  std::array<uint32_t, 256> to_char{};
  std::array<std::string, 256> utf8;
  std::array<int16_t, 512> to_byte{};  // every mapped code point is < 0x144

  Maps() {
    to_byte.fill(-1);
    uint32_t n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      to_char[b] = printable ? uint32_t(b) : 256 + n++;
    }
    for (int b = 0; b < 256; ++b) {
      to_byte[to_char[b]] = static_cast<int16_t>(b);
      append_utf8(utf8[b], to_char[b]);
    }
  }
};

const Maps& maps() {
  static const Maps m;
  return m;
}

}  // namespace

uint32_t byte_to_char(uint8_t b) { return maps().to_char[b]; }

int char_to_byte(uint32_t cp) { return cp < 512 ? maps().to_byte[cp] : -1; }

const std::string& byte_char_utf8(uint8_t b) { return maps().utf8[b]; }

std::string bytes_to_byte_level(std::string_view bytes) {
  const Maps& m = maps();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) out += m.utf8[b];
  return out;
}

bool byte_level_to_bytes(std::string_view s, std::string* out) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    int len;
    const uint32_t cp = decode_utf8(p, end, &len);
    const int b = cp == kInvalidCp ? -1 : char_to_byte(cp);
    if (b < 0) return false;
    out->push_back(static_cast<char>(b));
    p += len;
  }
  return true;
}

}  // namespace tv::tok
