// The GPT-2 split and the character classes against HuggingFace `tokenizers` (fixtures from
// scripts/fixtures/tokenizer_fixtures.py).
#include <gtest/gtest.h>

#include "tok_test_util.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/unicode.h"

using namespace tv::tok;
using namespace tv::tok::testing;

TEST(Pretokenize, CharClassesMatchHuggingFaceForEveryCodePoint) {
  const auto runs = nlohmann::json::parse(read_all(fixture("hf_char_classes.json")));
  ASSERT_GT(runs.size(), 1000u);
  size_t checked = 0, wrong = 0;
  for (const auto& r : runs) {
    const uint32_t lo = r[0], hi = r[2];
    const std::string c = r[1];
    const CharClass want = c == "L" ? CharClass::Letter : c == "N" ? CharClass::Number : c == "S" ? CharClass::Space : CharClass::Other;
    for (uint32_t cp = lo; cp <= hi; ++cp, ++checked)
      if (char_class(cp) != want && wrong++ < 10) {
        ADD_FAILURE() << "U+" << std::hex << cp << " class " << int(char_class(cp));
      }
  }
  EXPECT_EQ(wrong, 0u);
  EXPECT_EQ(checked, 0x110000u - 0x800u);  // every scalar value
}

TEST(Pretokenize, SplitMatchesHuggingFaceOnHostileStrings) {
  size_t n = 0;
  for (const auto& c : hostile()) {
    const std::string text = c["text"];
    std::vector<std::pair<size_t, size_t>> got, want;
    gpt2_split(text, [&](size_t off, size_t len) { got.emplace_back(off, off + len); });
    for (const auto& p : c["pieces"]) want.emplace_back(p[0].get<size_t>(), p[1].get<size_t>());
    EXPECT_EQ(got, want) << nlohmann::json(text).dump();
    ++n;
  }
  EXPECT_GT(n, 500u);
}

TEST(Pretokenize, KnownSplits) {
  using V = std::vector<std::string_view>;
  EXPECT_EQ(gpt2_pieces("Hello, world!"), (V{"Hello", ",", " world", "!"}));
  EXPECT_EQ(gpt2_pieces("it's IT'S"), (V{"it", "'s", " IT", "'", "S"}));
  EXPECT_EQ(gpt2_pieces("a   b"), (V{"a", "  ", " b"}));
  EXPECT_EQ(gpt2_pieces("a\t\tb"), (V{"a", "\t", "\t", "b"}));
  EXPECT_EQ(gpt2_pieces("x  "), (V{"x", "  "}));
  EXPECT_EQ(gpt2_pieces("1234567"), (V{"1234567"}));
  EXPECT_EQ(gpt2_pieces(" 's"), (V{" '", "s"}));
  EXPECT_EQ(gpt2_pieces("<s>hi</s>"), (V{"<", "s", ">", "hi", "</", "s", ">"}));
  EXPECT_EQ(gpt2_pieces("cafe\xCC\x81"), (V{"cafe", "\xCC\x81"}));
  EXPECT_EQ(gpt2_pieces(""), V{});
}

TEST(Pretokenize, IllFormedBytesAreCoveredWithoutGaps) {
  // Not reachable from HuggingFace (Python strings are valid), but must tile the input.
  const std::string s = "ab\xFF\xC3 \xE2\x82 cd\xF0\x9F\x98";
  size_t pos = 0;
  gpt2_split(s, [&](size_t off, size_t len) {
    EXPECT_EQ(off, pos);
    EXPECT_GT(len, 0u);
    pos = off + len;
  });
  EXPECT_EQ(pos, s.size());
}

TEST(Pretokenize, ByteLevelMappingIsABijection) {
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  const std::string mapped = bytes_to_byte_level(all);
  std::string back;
  ASSERT_TRUE(byte_level_to_bytes(mapped, &back));
  EXPECT_EQ(back, all);
  EXPECT_EQ(byte_to_char(' '), 0x120u);  // 'Ġ'
  EXPECT_EQ(byte_to_char('\n'), 0x10Au);  // 'Ċ'
  EXPECT_EQ(byte_to_char('a'), uint32_t('a'));
  std::string tmp;
  EXPECT_FALSE(byte_level_to_bytes("\xE4\xB8\xAD", &tmp));  // '中' is not a byte character
}

TEST(Pretokenize, Utf8LossyMatchesMaximalSubpartRule) {
  size_t n = 0;
  EXPECT_EQ(utf8_lossy("a\xF0\x9F\x98" "b", &n), "a\xEF\xBF\xBD" "b");  // truncated 4-byte sequence: one U+FFFD
  EXPECT_EQ(n, 1u);
  EXPECT_EQ(utf8_lossy("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");     // overlong: two
  EXPECT_EQ(utf8_lossy("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate: three
  EXPECT_EQ(find_invalid_utf8("plain ascii text, long enough for the fast path"), std::string_view::npos);
  EXPECT_EQ(find_invalid_utf8("0123456789\x80"), 10u);
}
