// UTF-8 decoding and the character classes the GPT-2 split pattern needs (\p{L}, \p{N}, \s).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tv::tok {

// Classes of the split pattern: Letter = \p{L}, Number = \p{N}, Space = \s as Oniguruma defines it
// for Unicode (U+0009..U+000D, U+0085, Zs, Zl, Zp), Other = everything else ([^\s\p{L}\p{N}]).
enum class CharClass : uint8_t { Other = 0, Letter = 1, Number = 2, Space = 3 };

// Class of a code point (full Unicode table built once from utf8proc's categories).
CharClass char_class(uint32_t cp);
// \w as the Rust regex crate defines it (Alphabetic, marks, Nd, Pc, joiners): used by the
// single_word option of added tokens.
bool is_word_char(uint32_t cp);
// \s as the Rust regex crate defines it (White_Space): used by lstrip/rstrip of added tokens.
bool is_white_space(uint32_t cp);

// Lenient decoder: returns the code point at p (p < end) and its byte length in *len. A byte that
// does not start a well-formed sequence decodes as itself with length 1 and kInvalidCp.
inline constexpr uint32_t kInvalidCp = 0xFFFFFFFFu;
inline uint32_t decode_utf8(const unsigned char* p, const unsigned char* end, int* len) {
  const unsigned b0 = p[0];
  if (b0 < 0x80) {
    *len = 1;
    return b0;
  }
  const ptrdiff_t avail = end - p;
  auto cont = [&](int i) { return i < avail && (p[i] & 0xC0) == 0x80; };
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    if (cont(1)) {
      *len = 2;
      return ((b0 & 0x1F) << 6) | (p[1] & 0x3F);
    }
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    if (cont(1) && cont(2)) {
      const uint32_t cp = ((b0 & 0x0F) << 12) | ((p[1] & 0x3F) << 6) | (p[2] & 0x3F);
      if (cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF)) {
        *len = 3;
        return cp;
      }
    }
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    if (cont(1) && cont(2) && cont(3)) {
      const uint32_t cp = ((b0 & 0x07) << 18) | ((p[1] & 0x3F) << 12) | ((p[2] & 0x3F) << 6) | (p[3] & 0x3F);
      if (cp >= 0x10000 && cp <= 0x10FFFF) {
        *len = 4;
        return cp;
      }
    }
  }
  *len = 1;
  return kInvalidCp;
}

void append_utf8(std::string& out, uint32_t cp);

// Offset of the first byte that is not part of well-formed UTF-8, or npos when s is valid.
size_t find_invalid_utf8(std::string_view s);
// Replaces each maximal ill-formed subpart with U+FFFD, exactly as Rust's String::from_utf8_lossy
// (and Python's errors="replace") do. Returns the number of replacements through *replaced.
std::string utf8_lossy(std::string_view s, size_t* replaced = nullptr);

}  // namespace tv::tok
