// The BPE trainer against HuggingFace's BpeTrainer (fixtures from
// scripts/fixtures/tokenizer_fixtures.py).
#include <gtest/gtest.h>

#include "core/error.h"
#include "tok_test_util.h"
#include "tokenizer/trainer.h"

using namespace tv::tok;
using namespace tv::tok::testing;

namespace {

CorpusOptions hf_file_options() {
  CorpusOptions c;
  c.keep_line_endings = true;  // as HuggingFace's train(files)
  return c;
}

}  // namespace

TEST(Trainer, ReproducesHuggingFaceTrainingOnTheCorpus) {
  TrainOptions o;
  o.vocab_size = expected()["vocab_size"];
  o.min_frequency = 2;
  o.threads = 2;
  const WordCounts counts = count_words_in_files({fixture("corpus.txt")}, hf_file_options(), o);
  const std::string json = train_bpe(counts, o).to_json();
  // The committed tinyvlm-trained tokenizer (whose HF ids the other tests check) ...
  EXPECT_TRUE(json == read_all(fixture("tv_tokenizer.json")));
  // ... and HuggingFace's own training on the same file, byte for byte.
  EXPECT_TRUE(json == read_all(fixture("hf_tokenizer.json")));
}

TEST(Trainer, SeenAlphabetFromJsonlReproducesHuggingFace) {
  TrainOptions o;
  o.vocab_size = 600;
  o.min_frequency = 2;
  o.full_alphabet = false;
  o.threads = 1;
  CorpusOptions c;  // .jsonl: one {"text": ...} per line, like train_from_iterator over the texts
  const WordCounts counts = count_words_in_files({fixture("ascii_subset.jsonl")}, c, o);
  EXPECT_TRUE(train_bpe(counts, o).to_json() == read_all(fixture("hf_seen_tokenizer.json")));
}

TEST(Trainer, ResultDoesNotDependOnThreads) {
  const std::string corpus = read_all(fixture("corpus.txt")).substr(0, 200000);
  std::vector<std::string_view> seqs;
  for (size_t pos = 0; pos < corpus.size();) {
    size_t nl = corpus.find('\n', pos);
    nl = nl == std::string::npos ? corpus.size() : nl + 1;
    seqs.emplace_back(corpus.data() + pos, nl - pos);
    pos = nl;
  }
  TrainOptions o;
  o.vocab_size = 1500;
  o.threads = 1;
  const std::string one = train_bpe(seqs, o).to_json();
  o.threads = 2;
  EXPECT_EQ(train_bpe(seqs, o).to_json(), one);
}

TEST(Trainer, TieBreakAndMinFrequency) {
  // "ab" and "cd" both occur 3 times: the pair with the smaller ids ('a' < 'c') merges first.
  TrainOptions o;
  o.special_tokens = {"<unk>"};
  o.vocab_size = 1 + 256 + 10;
  o.min_frequency = 3;
  Tokenizer t = train_bpe(std::vector<std::string_view>{"cd ab cd ab cd ab xy"}, o);
  // Words: "cd" x1, " ab" x3, " cd" x2, " xy" x1. Count 3: (a,b), (c,d), (Ġ,a); then (Ġ,ab) has 3
  // and (Ġ,cd) only 2, below min_frequency.
  ASSERT_EQ(t.num_merges(), 3u);
  const auto j = nlohmann::json::parse(t.to_json());
  EXPECT_EQ(j["model"]["merges"][0], nlohmann::json::array({"a", "b"}));
  EXPECT_EQ(j["model"]["merges"][1], nlohmann::json::array({"c", "d"}));
  EXPECT_EQ(j["model"]["merges"][2], nlohmann::json::array({"\xC4\xA0", "ab"}));
  EXPECT_EQ(t.token_to_id("ab"), 257);
  EXPECT_EQ(t.token_to_id("cd"), 258);
  // Special tokens first, then the 256 byte characters in code point order.
  EXPECT_EQ(t.token_to_id("<unk>"), 0);
  EXPECT_EQ(t.token_to_id("!"), 1);
  EXPECT_EQ(t.token_to_id("\xC4\x80"), 1 + 188);  // byte 0 -> U+0100, after the 188 printable ones
}

TEST(Trainer, VocabSizeCapsTheMerges) {
  TrainOptions o;
  o.vocab_size = 4 + 256 + 5;
  o.min_frequency = 1;
  Tokenizer t = train_bpe(std::vector<std::string_view>{"the quick brown fox jumps over the lazy dog again and again"}, o);
  EXPECT_EQ(t.vocab_size(), o.vocab_size);
}

TEST(Trainer, InvalidUtf8IsReportedWithFileAndOffset) {
  TempDir d;
  write_all(d / "bad.txt", "good line\nbad \xFF byte\nmore\n");
  TrainOptions o;
  CorpusOptions c = hf_file_options();
  try {
    count_words_in_files({d / "bad.txt"}, c, o);
    FAIL() << "expected an error";
  } catch (const tv::Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("bad.txt: byte 14"), std::string::npos) << msg;
  }
  c.invalid_utf8 = InvalidUtf8::Skip;
  CorpusStats st;
  WordCounts w = count_words_in_files({d / "bad.txt"}, c, o, &st);
  EXPECT_EQ(st.invalid_docs, 1u);
  EXPECT_EQ(st.docs, 2u);
  EXPECT_EQ(w.count("bad"), 0u);
  EXPECT_EQ(w.count("good"), 1u);
  c.invalid_utf8 = InvalidUtf8::Replace;
  w = count_words_in_files({d / "bad.txt"}, c, o, &st);
  EXPECT_EQ(st.replacements, 1u);
  EXPECT_EQ(w.count(" \xEF\xBF\xBD"), 1u);
}
