// The GPT-2 split of HuggingFace's ByteLevel pre-tokenizer, without a regex engine:
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// matched leftmost-first as Oniguruma does. The alternatives tile the text, so the scanner only
// decides where each piece ends:
//  - a contraction starting with ASCII ' (lower case only) is its own piece;
//  - a U+0020 followed by a non-space joins the run that follows it;
//  - letters, numbers and "other" characters form maximal runs of their class;
//  - a whitespace run followed by a non-space gives up its last character (which, when it is
//    U+0020, joins the next run; otherwise stands alone); at the end of text it is one piece.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/unicode.h"

namespace tv::tok {

namespace detail {

// Classes of ASCII bytes; bytes >= 0x80 are looked up through char_class().
struct AsciiClasses {
  CharClass c[128];
  constexpr AsciiClasses() : c{} {
    for (int i = 0; i < 128; ++i) {
      CharClass k = CharClass::Other;
      if ((i >= 'a' && i <= 'z') || (i >= 'A' && i <= 'Z')) k = CharClass::Letter;
      else if (i >= '0' && i <= '9') k = CharClass::Number;
      else if ((i >= 9 && i <= 13) || i == ' ') k = CharClass::Space;
      c[i] = k;
    }
  }
};
inline constexpr AsciiClasses kAscii{};

inline CharClass class_at(const unsigned char* p, const unsigned char* end, int* len) {
  if (*p < 0x80) {
    *len = 1;
    return kAscii.c[*p];
  }
  const uint32_t cp = decode_utf8(p, end, len);
  return cp == kInvalidCp ? CharClass::Other : char_class(cp);
}

// End of the maximal run of class k starting at p.
inline const unsigned char* run_end(const unsigned char* p, const unsigned char* end, CharClass k) {
  while (p < end) {
    if (*p < 0x80) {
      if (kAscii.c[*p] != k) break;
      ++p;
    } else {
      int len;
      if (class_at(p, end, &len) != k) break;
      p += len;
    }
  }
  return p;
}

}  // namespace detail

// Calls emit(offset, length) for each piece of text, in order. Bytes that are not well-formed
// UTF-8 count as single "other" characters.
template <typename Emit>
inline void gpt2_split(std::string_view text, Emit&& emit) {
  using detail::class_at;
  const auto* base = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = base + text.size();
  const auto* p = base;
  while (p < end) {
    int len;
    const unsigned c = *p;
    CharClass k = class_at(p, end, &len);
    if (c == '\'' && p + 1 < end) {
      const unsigned c1 = p[1];
      if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
        emit(size_t(p - base), size_t(2));
        p += 2;
        continue;
      }
      if (p + 2 < end) {
        const unsigned c2 = p[2];
        if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
          emit(size_t(p - base), size_t(3));
          p += 3;
          continue;
        }
      }
    }
    const unsigned char* q = p + len;  // first byte after the piece's leading character
    if (c == ' ' && q < end) {
      int nlen;
      const CharClass nk = class_at(q, end, &nlen);
      if (nk != CharClass::Space) {
        k = nk;
        q += nlen;
      }
    }
    if (k != CharClass::Space) {
      const unsigned char* e = detail::run_end(q, end, k);
      emit(size_t(p - base), size_t(e - p));
      p = e;
      continue;
    }
    // Whitespace run [p, e).
    const unsigned char* last = p;  // start of the run's last character
    const unsigned char* e = q;
    while (e < end) {
      int l2;
      if (class_at(e, end, &l2) != CharClass::Space) break;
      last = e;
      e += l2;
    }
    if (e == end) {
      emit(size_t(p - base), size_t(e - p));
      p = e;
    } else if (last > p) {
      emit(size_t(p - base), size_t(last - p));  // the last character starts the next piece
      p = last;
    } else {
      emit(size_t(p - base), size_t(len));  // a lone non-U+0020 space before a non-space
      p += len;
    }
  }
}

// Convenience form: the pieces as views into text.
std::vector<std::string_view> gpt2_pieces(std::string_view text);

}  // namespace tv::tok
