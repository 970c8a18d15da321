// Token shards: format, reading back, multi-shard streams, uint32 width, bad input.
#include <gtest/gtest.h>

#include <cstring>

#include "core/error.h"
#include "tok_test_util.h"
#include "tokenizer/bpe.h"
#include "tokenizer/corpus.h"
#include "tokenizer/shards.h"

using namespace tv::tok;
using namespace tv::tok::testing;

namespace {

std::vector<int32_t> read_set(const ShardSet& s) {
  std::vector<int32_t> out(s.size());
  s.read(0, out.size(), out.data());
  return out;
}

}  // namespace

TEST(Shards, CorpusRoundTripsThroughShards) {
  const Tokenizer t = Tokenizer::load(fixture("hf_tokenizer.json"));
  TempDir d;
  write_all(d / "a.txt", "First document.\nStill the first, it's one file.\n");
  write_all(d / "b.jsonl", "{\"text\": \"doc one <s> with specials\"}\n\n{\"text\": \"doc two 😀\", \"id\": 2}\n");
  write_all(d / "c.txt", "");  // empty: no document
  write_all(d / "d.txt", read_all(fixture("corpus.txt")).substr(0, 30000));
  const std::vector<std::string> files = {d / "a.txt", d / "b.jsonl", d / "c.txt", d / "d.txt"};
  CorpusOptions c;
  c.whole_file = true;
  TokenizeOptions o;
  o.shard_tokens = 1000;
  o.progress = false;
  o.threads = 2;
  const TokenizeStats st = tokenize_corpus(t, files, d / "out", c, o);

  std::vector<int32_t> want;
  for (const std::string& doc : {read_all(d / "a.txt"), std::string("doc one <s> with specials"),
                                std::string("doc two 😀"), read_all(d / "d.txt")}) {
    const auto ids = t.encode(doc);
    want.insert(want.end(), ids.begin(), ids.end());
    want.push_back(2);
  }
  EXPECT_EQ(st.docs, 4u);
  EXPECT_EQ(st.tokens, want.size());
  ASSERT_GT(st.shards.size(), 2u);

  const ShardSet set(d / "out");
  EXPECT_EQ(set.num_shards(), st.shards.size());
  EXPECT_EQ(set.vocab_size(), 4000u);
  EXPECT_EQ(set.eos_id(), 2);
  EXPECT_EQ(read_set(set), want);
  EXPECT_EQ(set.token(1000), want[1000]);
  std::vector<int32_t> mid(1500);
  set.read(700, mid.size(), mid.data());  // across two shard boundaries
  EXPECT_TRUE(std::equal(mid.begin(), mid.end(), want.begin() + 700));
  EXPECT_THROW(set.read(want.size() - 2, 5, mid.data()), tv::Error);

  const ShardReader first(d / "out/shard_00000.bin");
  EXPECT_EQ(first.size(), 1000u);
  EXPECT_EQ(first.token_bytes(), 2u);
  EXPECT_EQ(first.header().version, 1u);
  uint64_t docs = 0;
  for (size_t i = 0; i < set.num_shards(); ++i) docs += set.shard(i).num_docs();
  EXPECT_EQ(docs, 4u);
  EXPECT_EQ(list_shards(d / "out").size(), st.shards.size());
  EXPECT_TRUE(is_shard_file(d / "out/shard_00000.bin"));
  EXPECT_FALSE(is_shard_file(d / "a.txt"));

  // The raw bytes: 64-byte header, then little-endian uint16 ids.
  const std::string raw = read_all(d / "out/shard_00000.bin");
  ASSERT_EQ(raw.size(), 64u + 2 * 1000);
  EXPECT_EQ(raw.substr(0, 8), "TVTOKENS");
  uint16_t v0;
  std::memcpy(&v0, raw.data() + 64, 2);
  EXPECT_EQ(v0, uint16_t(want[0]));
  const auto manifest = nlohmann::json::parse(read_all(d / "out/manifest.json"));
  EXPECT_EQ(manifest["num_tokens"].get<uint64_t>(), want.size());
  EXPECT_EQ(manifest["shards"].size(), st.shards.size());

  // Same bytes whatever the thread count; a rerun replaces the old shards.
  o.threads = 1;
  o.shard_tokens = 1u << 20;
  tokenize_corpus(t, files, d / "out", c, o);
  const ShardSet again(d / "out");
  EXPECT_EQ(again.num_shards(), 1u);
  EXPECT_EQ(read_set(again), want);
}

TEST(Shards, LinesModeMakesOneDocumentPerLine) {
  const Tokenizer t = Tokenizer::load(fixture("hf_tokenizer.json"));
  TempDir d;
  write_all(d / "a.txt", "one\r\n\ntwo words\nthree");
  CorpusOptions c;
  c.whole_file = false;
  TokenizeOptions o;
  o.progress = false;
  const TokenizeStats st = tokenize_corpus(t, {d / "a.txt"}, d / "out", c, o);
  EXPECT_EQ(st.docs, 3u);
  std::vector<int32_t> want;
  for (const char* s : {"one", "two words", "three"}) {
    for (int32_t id : t.encode(s)) want.push_back(id);
    want.push_back(2);
  }
  EXPECT_EQ(read_set(ShardSet(d / "out")), want);
}

TEST(Shards, WideVocabularyUsesUint32) {
  // A vocabulary past 65536 ids: byte characters plus filler tokens, and an added token at the end.
  std::vector<std::string> vocab = {"<unk>", "</s>"};
  for (int b = 0; b < 256; ++b) vocab.push_back(std::string());
  {
    const Tokenizer ref = Tokenizer::load(fixture("hf_tokenizer.json"));
    for (int b = 0; b < 256; ++b) vocab[2 + b] = ref.id_to_token(4 + b);
  }
  while (vocab.size() < 70000) vocab.push_back("filler" + std::to_string(vocab.size()));
  AddedToken eos;
  eos.content = "</s>";
  Tokenizer t = Tokenizer::from_vocab_merges(vocab, {}, {eos}, BpeOptions{});
  const int32_t big = t.add_special_token("<image>");
  EXPECT_EQ(big, 70000);
  TempDir d;
  write_all(d / "a.txt", "hi <image>");
  CorpusOptions c;
  c.whole_file = true;
  TokenizeOptions o;
  o.progress = false;
  tokenize_corpus(t, {d / "a.txt"}, d / "out", c, o);
  const ShardReader r(d / "out/shard_00000.bin");
  EXPECT_EQ(r.token_bytes(), 4u);
  EXPECT_EQ(r.vocab_size(), 70001u);
  std::vector<int32_t> got(r.size());
  r.read(0, got.size(), got.data());
  std::vector<int32_t> want = t.encode("hi <image>");
  want.push_back(1);
  EXPECT_EQ(got, want);
  EXPECT_EQ(got[got.size() - 2], 70000);
}

TEST(Shards, BadFilesAreRejected) {
  TempDir d;
  write_all(d / "short.bin", "TVTOKENS");
  EXPECT_THROW(ShardReader(d / "short.bin"), tv::Error);
  std::string h(64, '\0');
  std::memcpy(h.data(), "NOTATOKN", 8);
  write_all(d / "magic.bin", h);
  EXPECT_THROW(ShardReader(d / "magic.bin"), tv::Error);
  {
    ShardWriter w(d / "ok.bin", 100, 2);
    const int32_t ids[3] = {1, 2, 3};
    w.write(ids, 3);
    const int32_t bad[1] = {100};
    EXPECT_THROW(w.write(bad, 1), tv::Error);
  }
  std::string raw = read_all(d / "ok.bin");
  EXPECT_EQ(ShardReader(d / "ok.bin").size(), 3u);
  write_all(d / "trunc.bin", raw.substr(0, raw.size() - 1));
  try {
    ShardReader r(d / "trunc.bin");
    FAIL();
  } catch (const tv::Error& e) {
    EXPECT_NE(std::string(e.what()).find("header promises"), std::string::npos) << e.what();
  }
}

TEST(Shards, InvalidUtf8DocumentsErrorOrAreSkippedAndCounted) {
  const Tokenizer t = Tokenizer::load(fixture("hf_tokenizer.json"));
  TempDir d;
  write_all(d / "a.jsonl", "{\"text\": \"fine\"}\n{\"text\": \"bad \xC3\x28 here\"}\n{\"text\": \"also fine\"}\n");
  CorpusOptions c;
  TokenizeOptions o;
  o.progress = false;
  try {
    tokenize_corpus(t, {d / "a.jsonl"}, d / "out", c, o);
    FAIL();
  } catch (const tv::Error& e) {
    EXPECT_NE(std::string(e.what()).find("a.jsonl: byte 31"), std::string::npos) << e.what();
  }
  c.invalid_utf8 = InvalidUtf8::Skip;
  CorpusStats cs;
  const TokenizeStats st = tokenize_corpus(t, {d / "a.jsonl"}, d / "out", c, o, &cs);
  EXPECT_EQ(st.docs, 2u);
  EXPECT_EQ(cs.invalid_docs, 1u);
  EXPECT_EQ(nlohmann::json::parse(read_all(d / "out/manifest.json"))["invalid_utf8_docs"], 1);
  c.invalid_utf8 = InvalidUtf8::Replace;
  const TokenizeStats st2 = tokenize_corpus(t, {d / "a.jsonl"}, d / "out", c, o, &cs);
  EXPECT_EQ(st2.docs, 3u);
  EXPECT_EQ(cs.replacements, 1u);
}

TEST(Shards, JsonlErrorsNameFileAndLine) {
  const Tokenizer t = Tokenizer::load(fixture("hf_tokenizer.json"));
  TempDir d;
  write_all(d / "a.jsonl", "{\"text\": \"ok\"}\n{\"body\": \"no text\"}\n");
  TokenizeOptions o;
  o.progress = false;
  try {
    tokenize_corpus(t, {d / "a.jsonl"}, d / "out", CorpusOptions{}, o);
    FAIL();
  } catch (const tv::Error& e) {
    EXPECT_NE(std::string(e.what()).find("a.jsonl: line 2"), std::string::npos) << e.what();
  }
}
