#include "tokenizer/unicode.h"

#include <utf8proc.h>

#include <cstring>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace tv::tok {
namespace {

constexpr uint32_t kMaxCp = 0x110000;

// utf8proc 2.8 carries Unicode 15.0; HuggingFace's Oniguruma knows Unicode 16.0. These are the
// letters and digits assigned since (found by probing every code point through HuggingFace
// `tokenizers`, see scripts/fixtures/tokenizer_fixtures.py and tests/tokenizer/test_pretokenize.cpp).
struct Range {
  uint32_t lo, hi;
  CharClass cls;
};
constexpr Range kNewer[] = {
#include "tokenizer/unicode_newer.inc"
};

// Two-stage table: 256-entry blocks, identical blocks shared. Bits 0-1: CharClass, bit 2: \w,
// bit 3: White_Space.
struct ClassTable {
  std::vector<uint16_t> stage1;  // kMaxCp >> 8 entries
  std::vector<uint8_t> stage2;   // blocks of 256

  ClassTable() {
    std::vector<uint8_t> flat(kMaxCp);
    for (uint32_t cp = 0; cp < kMaxCp; ++cp) flat[cp] = compute(cp);
    for (const Range& r : kNewer)
      for (uint32_t cp = r.lo; cp <= r.hi; ++cp)
        flat[cp] = static_cast<uint8_t>((flat[cp] & ~3u) | uint8_t(r.cls) | (r.cls == CharClass::Letter ? 4 : 0));
    // Share identical blocks (most of the planes are unassigned or uniform).
    stage1.resize(kMaxCp >> 8);
    std::unordered_map<std::string_view, uint16_t> seen;
    for (uint32_t hi = 0; hi < (kMaxCp >> 8); ++hi) {
      const std::string_view block(reinterpret_cast<const char*>(&flat[hi << 8]), 256);
      auto [it, fresh] = seen.emplace(block, static_cast<uint16_t>(seen.size()));
      if (fresh) stage2.insert(stage2.end(), flat.begin() + (hi << 8), flat.begin() + ((hi + 1) << 8));
      stage1[hi] = it->second;
    }
  }

  static bool is_space(uint32_t cp, utf8proc_category_t cat) {
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x85 || cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL ||
           cat == UTF8PROC_CATEGORY_ZP;
  }

  static uint8_t compute(uint32_t cp) {
    const auto cat = (cp >= 0xD800 && cp <= 0xDFFF) ? UTF8PROC_CATEGORY_CS : utf8proc_category(static_cast<int32_t>(cp));
    CharClass cls = CharClass::Other;
    switch (cat) {
      case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
      case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
        cls = CharClass::Letter;
        break;
      case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
        cls = CharClass::Number;
        break;
      default:
        if (is_space(cp, cat)) cls = CharClass::Space;
        break;
    }
    // \w: Alphabetic (letters, Nl, Other_Alphabetic: approximated by marks and the circled
    // letters), marks, decimal digits, connector punctuation, ZWNJ/ZWJ.
    bool word = cls == CharClass::Letter || cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_MN ||
                cat == UTF8PROC_CATEGORY_MC || cat == UTF8PROC_CATEGORY_ME || cat == UTF8PROC_CATEGORY_ND ||
                cat == UTF8PROC_CATEGORY_PC || cp == 0x200C || cp == 0x200D || (cp >= 0x24B6 && cp <= 0x24E9) ||
                (cp >= 0x1F130 && cp <= 0x1F149) || (cp >= 0x1F150 && cp <= 0x1F169) ||
                (cp >= 0x1F170 && cp <= 0x1F189);
    const bool white = is_space(cp, cat);
    return static_cast<uint8_t>(static_cast<uint8_t>(cls) | (word ? 4 : 0) | (white ? 8 : 0));
  }
};

const ClassTable& table() {
  static const ClassTable t;
  return t;
}

inline uint8_t bits(uint32_t cp) {
  if (cp >= kMaxCp) return 0;
  const ClassTable& t = table();
  return t.stage2[size_t(t.stage1[cp >> 8]) * 256 + (cp & 0xFF)];
}

}  // namespace

CharClass char_class(uint32_t cp) { return static_cast<CharClass>(bits(cp) & 3); }
bool is_word_char(uint32_t cp) { return (bits(cp) & 4) != 0; }
bool is_white_space(uint32_t cp) { return (bits(cp) & 8) != 0; }

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

namespace {

// Length of the well-formed sequence at p (1-4), or -(bytes of the maximal ill-formed subpart).
inline int utf8_step(const unsigned char* p, const unsigned char* end) {
  const unsigned b0 = p[0];
  if (b0 < 0x80) return 1;
  const ptrdiff_t avail = end - p;
  int need;
  unsigned lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return -1;
  }
  for (int i = 1; i <= need; ++i) {
    if (i >= avail) return -i;
    const unsigned b = p[i];
    const unsigned l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
    if (b < l || b > h) return -i;
  }
  return need + 1;
}

}  // namespace

size_t find_invalid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  const auto* q = p;
  while (q < end) {
    // ASCII fast path, eight bytes at a time.
    while (end - q >= 8) {
      uint64_t w;
      std::memcpy(&w, q, 8);
      if (w & 0x8080808080808080ull) break;
      q += 8;
    }
    if (q >= end) break;
    const int n = utf8_step(q, end);
    if (n < 0) return static_cast<size_t>(q - p);
    q += n;
  }
  return std::string_view::npos;
}

std::string utf8_lossy(std::string_view s, size_t* replaced) {
  std::string out;
  out.reserve(s.size());
  size_t count = 0;
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    const int n = utf8_step(p, end);
    if (n > 0) {
      out.append(reinterpret_cast<const char*>(p), n);
      p += n;
    } else {
      out.append("\xEF\xBF\xBD");
      p += -n;
      ++count;
    }
  }
  if (replaced) *replaced = count;
  return out;
}

}  // namespace tv::tok
