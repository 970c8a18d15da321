// Encoding, decoding and tokenizer.json against HuggingFace `tokenizers` (fixtures from
// scripts/fixtures/tokenizer_fixtures.py).
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <memory>
#include <random>

#include "core/error.h"
#include "tok_test_util.h"
#include "tokenizer/bpe.h"
#include "tokenizer/unicode.h"

using namespace tv::tok;
using namespace tv::tok::testing;

namespace {

const Tokenizer& load_cached(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  auto& slot = cache[name];
  if (!slot) {
    if (name == "hf_image") {
      slot = std::make_unique<Tokenizer>(Tokenizer::load(fixture("hf_tokenizer.json")));
      slot->add_special_token("<image>");
    } else {
      slot = std::make_unique<Tokenizer>(Tokenizer::load(fixture(name + "_tokenizer.json")));
    }
  }
  return *slot;
}

// Checks ids and decodes of every hostile string against HF; returns the number of cases.
size_t check_cases(const std::string& name, bool roundtrip) {
  const Tokenizer& t = load_cached(name);
  const auto& cases = expected()["cases"][name];
  const auto& strings = hostile();
  EXPECT_EQ(cases.size(), strings.size());
  size_t bad = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string text = strings[i]["text"];
    const auto want = cases[i]["ids"].get<std::vector<int32_t>>();
    const std::vector<int32_t> got = t.encode(text);
    if (got != want && bad++ < 5) {
      ADD_FAILURE() << name << ": ids differ for " << nlohmann::json(text).dump();
    }
    const std::string dec = cases[i]["decode"].is_null() ? text : cases[i]["decode"].get<std::string>();
    const std::string keep = cases[i]["decode_keep"].is_null() ? text : cases[i]["decode_keep"].get<std::string>();
    EXPECT_EQ(t.decode(want), dec) << name << " " << nlohmann::json(text).dump();
    EXPECT_EQ(t.decode(want, false), keep) << name << " " << nlohmann::json(text).dump();
    if (roundtrip) {
      EXPECT_EQ(t.decode(got, false), text) << name << " " << nlohmann::json(text).dump();
    }
  }
  EXPECT_EQ(bad, 0u) << name;
  return cases.size();
}

}  // namespace

TEST(Bpe, HostileStringsMatchHuggingFace) { EXPECT_GT(check_cases("hf", true), 500u); }
TEST(Bpe, HostileStringsMatchHuggingFaceWithImageToken) { check_cases("hf_image", true); }
// The tokenizer trained by tinyvlm, loaded in HuggingFace: HF's ids are ours.
TEST(Bpe, TinyvlmTrainedTokenizerMatchesHuggingFace) { check_cases("tv", true); }
// Alphabet limited to the bytes seen (the original's setting): unknown bytes become <unk>.
TEST(Bpe, SeenAlphabetTokenizerWithUnkMatchesHuggingFace) { check_cases("hf_seen", false); }
// add_prefix_space, ignore_merges, TemplateProcessing, added tokens with single_word, lstrip,
// rstrip and normalized flags.
TEST(Bpe, VariantTokenizerMatchesHuggingFace) { check_cases("hf_variant", false); }

TEST(Bpe, DecodeOfArbitraryIdsMatchesHuggingFace) {
  const Tokenizer& t = load_cached("hf_image");
  for (const auto& c : expected()["decode_cases_hf_image"]) {
    const auto ids = c["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(t.decode(ids), c["decode"].get<std::string>()) << c["ids"].dump();
    EXPECT_EQ(t.decode(ids, false), c["decode_keep"].get<std::string>()) << c["ids"].dump();
  }
}

TEST(Bpe, CorpusMatchesHuggingFace) {
  const std::string corpus = read_all(fixture("corpus.txt"));
  ASSERT_GE(corpus.size(), 1000000u);
  const int block = expected()["block_lines"];
  std::vector<std::string> blocks;
  size_t pos = 0;
  while (pos < corpus.size()) {
    size_t end = pos;
    for (int k = 0; k < block && end < corpus.size(); ++k) {
      const size_t nl = corpus.find('\n', end);
      end = nl == std::string::npos ? corpus.size() : nl + 1;
    }
    blocks.push_back(corpus.substr(pos, end - pos));
    pos = end;
  }
  std::vector<std::string_view> views(blocks.begin(), blocks.end());
  for (const char* name : {"hf", "tv"}) {
    const auto& want = expected()["corpus"][name];
    ASSERT_EQ(want.size(), blocks.size());
    const auto got = load_cached(name).encode_batch(views);
    size_t bad = 0, tokens = 0;
    for (size_t i = 0; i < blocks.size(); ++i) {
      tokens += got[i].size();
      if ((got[i].size() != want[i]["count"].get<size_t>() || fnv1a64_ids(got[i]) != want[i]["fnv1a64"]) && bad++ < 3) {
        ADD_FAILURE() << name << ": block " << i << " (lines " << i * block + 1 << "..) differs from HuggingFace";
      }
      EXPECT_EQ(load_cached(name).decode(got[i], false), blocks[i]);
    }
    EXPECT_EQ(bad, 0u);
    EXPECT_GT(tokens, 100000u);
  }
}

TEST(Bpe, ParallelAndBatchEncodingEqualSerial) {
  const Tokenizer& t = load_cached("hf_image");
  std::string corpus = read_all(fixture("corpus.txt"));
  corpus += "<image> tail <s>x</s>";
  const std::vector<int32_t> serial = t.encode(corpus);
  EXPECT_EQ(t.encode_parallel(corpus, 2), serial);
  EXPECT_EQ(t.encode_parallel(corpus, 3), serial);
  t.clear_cache();
  EXPECT_EQ(t.encode(corpus), serial);  // cold cache gives the same ids
  // Prefix space, template and added tokens with flags: only the first cut of a piece is "first".
  const Tokenizer& v = load_cached("hf_variant");
  EXPECT_EQ(v.encode_parallel(corpus, 2), v.encode(corpus));
  EXPECT_EQ(v.encode_parallel(corpus, 2, false), v.encode(corpus, false));
}

TEST(Bpe, JsonRoundTripIsByteIdenticalToHuggingFace) {
  for (const char* name : {"hf_tokenizer.json", "tv_tokenizer.json", "hf_seen_tokenizer.json", "hf_variant_tokenizer.json"}) {
    const std::string text = read_all(fixture(name));
    EXPECT_EQ(Tokenizer::from_json(text).to_json(), text) << name;
  }
}

TEST(Bpe, AddingImageTokenMatchesHuggingFace) {
  Tokenizer t = Tokenizer::load(fixture("hf_tokenizer.json"));
  const int vocab = expected()["vocab_size"];
  EXPECT_EQ(t.vocab_size(), size_t(vocab));
  const int32_t id = t.add_special_token("<image>");
  EXPECT_EQ(id, expected()["image_id"].get<int32_t>());
  EXPECT_EQ(id, vocab);  // 32000 for the original's 32000-token vocabulary
  EXPECT_EQ(t.vocab_size(), size_t(vocab + 1));
  EXPECT_EQ(t.id_bound(), vocab + 1);
  EXPECT_TRUE(t.is_special(id));
  EXPECT_EQ(t.add_special_token("<image>"), id);  // idempotent
  const std::string json = t.to_json();
  EXPECT_EQ(json.size(), expected()["image_json_bytes"].get<size_t>());
  EXPECT_EQ(fnv1a64_bytes(json), expected()["image_json_fnv1a64"].get<std::string>());
  EXPECT_EQ(t.encode("<image> a brown dog")[0], id);
  EXPECT_EQ(t.decode(t.encode("<image> a brown dog")), " a brown dog");
}

TEST(Bpe, LegacyStringMergesEncodeTheSame) {
  auto j = nlohmann::json::parse(read_all(fixture("hf_tokenizer.json")));
  for (auto& m : j["model"]["merges"]) m = m[0].get<std::string>() + " " + m[1].get<std::string>();
  j["model"]["merges"].insert(j["model"]["merges"].begin(), "#version: 0.2");
  const Tokenizer legacy = Tokenizer::from_json(j.dump());
  const Tokenizer& ref = load_cached("hf");
  for (const auto& c : hostile()) {
    const std::string s = c["text"];
    EXPECT_EQ(legacy.encode(s), ref.encode(s)) << nlohmann::json(s).dump();
  }
}

TEST(Bpe, SpecialTokenIdsAndNames) {
  const Tokenizer& t = load_cached("hf");
  EXPECT_EQ(t.token_to_id("<unk>"), 0);
  EXPECT_EQ(t.token_to_id("<s>"), 1);
  EXPECT_EQ(t.token_to_id("</s>"), 2);
  EXPECT_EQ(t.token_to_id("<pad>"), 3);
  EXPECT_EQ(t.token_to_id("no such token"), -1);
  EXPECT_EQ(t.id_to_token(2), "</s>");
  EXPECT_EQ(t.encode("a</s>b"), (std::vector<int32_t>{t.token_to_id("a"), 2, t.token_to_id("b")}));
  EXPECT_EQ(t.decode(std::vector<int32_t>{t.token_to_id("a"), 2, 999999, -5}), "a");
  EXPECT_EQ(t.decode(std::vector<int32_t>{t.token_to_id("a"), 2}, false), "a</s>");
}

namespace {

std::string error_of(const std::string& json) {
  try {
    Tokenizer::from_json(json, "t.json");
  } catch (const tv::Error& e) {
    return e.what();
  }
  return "(no error)";
}

std::string mutate(const std::function<void(nlohmann::json&)>& f) {
  auto j = nlohmann::json::parse(read_all(fixture("hf_seen_tokenizer.json")));
  f(j);
  return j.dump();
}

}  // namespace

TEST(Bpe, MalformedTokenizerJsonNamesTheField) {
  EXPECT_NE(error_of("{\"model\": ").find("not valid JSON"), std::string::npos);
  EXPECT_NE(error_of("[1,2]").find("top level"), std::string::npos);
  auto has = [](const std::string& msg, const std::string& field) {
    EXPECT_NE(msg.find(field), std::string::npos) << msg;
    EXPECT_NE(msg.find("t.json"), std::string::npos) << msg;
  };
  has(error_of(mutate([](auto& j) { j["model"].erase("vocab"); })), "'model.vocab'");
  has(error_of(mutate([](auto& j) { j["model"]["vocab"]["zz"] = "x"; })), "'model.vocab'");
  has(error_of(mutate([](auto& j) { j["model"]["merges"][1] = 7; })), "'model.merges[1]'");
  has(error_of(mutate([](auto& j) { j["model"]["merges"][2] = "a b c"; })), "'model.merges[2]'");
  has(error_of(mutate([](auto& j) { j["model"]["merges"][3] = nlohmann::json::array({"nope", "a"}); })), "'model.merges[3]'");
  has(error_of(mutate([](auto& j) { j["model"]["type"] = "WordPiece"; })), "'model.type'");
  has(error_of(mutate([](auto& j) { j["model"]["dropout"] = 0.1; })), "'model.dropout'");
  has(error_of(mutate([](auto& j) { j["model"]["fuse_unk"] = "yes"; })), "'model.fuse_unk'");
  has(error_of(mutate([](auto& j) { j["added_tokens"][0].erase("content"); })), "'added_tokens[0].content'");
  has(error_of(mutate([](auto& j) { j["added_tokens"][1]["special"] = 1; })), "'added_tokens[1].special'");
  has(error_of(mutate([](auto& j) { j["pre_tokenizer"]["type"] = "Whitespace"; })), "'pre_tokenizer.type'");
  has(error_of(mutate([](auto& j) { j["pre_tokenizer"] = nullptr; })), "'pre_tokenizer'");
  has(error_of(mutate([](auto& j) { j["normalizer"] = {{"type", "NFC"}}; })), "'normalizer'");
  has(error_of(mutate([](auto& j) { j["decoder"]["type"] = "WordPiece"; })), "'decoder.type'");
  has(error_of(mutate([](auto& j) { j["post_processor"]["type"] = "BertProcessing"; })), "'post_processor.type'");
  has(error_of(mutate([](auto& j) { j["padding"] = {{"strategy", "BatchLongest"}}; })), "'padding'");
  has(error_of(mutate([](auto& j) { j["version"] = "2.0"; })), "'version'");
}

TEST(Bpe, FromVocabMergesBuildsAWorkingTokenizer) {
  // Only the byte characters of "a", "b" and " " ("Ġ"): anything else is <unk>.
  const std::vector<std::string> v = {"<unk>", "a", "b", "ab", "\xC4\xA0", "\xC4\xA0" "ab"};
  AddedToken unk;
  unk.content = "<unk>";
  BpeOptions opt;
  opt.unk_token = "<unk>";
  Tokenizer t = Tokenizer::from_vocab_merges(v, {{"a", "b"}, {"\xC4\xA0", "ab"}}, {unk}, opt);
  EXPECT_EQ(t.encode("ab ab"), (std::vector<int32_t>{3, 5}));
  EXPECT_EQ(t.encode("abc"), (std::vector<int32_t>{3, 0}));
  EXPECT_EQ(t.decode(std::vector<int32_t>{3, 5}), "ab ab");
  EXPECT_EQ(t.num_merges(), 2u);
  EXPECT_THROW(Tokenizer::from_vocab_merges(v, {{"a", "zz"}}, {}, opt), tv::Error);
}

TEST(Bpe, ArbitraryBytesRoundTripThroughLossyDecode) {
  const Tokenizer& t = load_cached("hf_image");
  std::mt19937 rng(7);
  for (int k = 0; k < 300; ++k) {
    std::string s(rng() % 200, '\0');
    for (char& c : s) c = static_cast<char>(rng() % 4 == 0 ? rng() % 256 : "ab <s>\xC3\xA9\xF0\x9F\x98\x80\n"[rng() % 14]);
    EXPECT_EQ(t.decode(t.encode(s), false), utf8_lossy(s));
  }
}

TEST(Bpe, LongWordsMatchANaiveMergeLoop) {
  // Words longer than 64 bytes take the heap path; compare both paths with the textbook loop.
  const auto j = nlohmann::json::parse(read_all(fixture("hf_tokenizer.json")));
  std::map<std::pair<std::string, std::string>, size_t> rank;
  size_t r = 0;
  for (const auto& m : j["model"]["merges"]) rank.emplace(std::make_pair(m[0].get<std::string>(), m[1].get<std::string>()), r++);
  const Tokenizer& t = load_cached("hf");
  std::mt19937 rng(11);
  const std::string letters = "etaoinshrdlucmfwypvbgkqjxz";
  for (int k = 0; k < 200; ++k) {
    std::string w(1 + rng() % 300, 'a');
    for (char& c : w) c = letters[std::min<size_t>(rng() % 40, letters.size() - 1)];
    std::vector<std::string> sym;
    for (char c : w) sym.emplace_back(1, c);
    while (sym.size() > 1) {
      size_t best = SIZE_MAX, at = 0;
      for (size_t i = 0; i + 1 < sym.size(); ++i) {
        auto it = rank.find({sym[i], sym[i + 1]});
        if (it != rank.end() && it->second < best) {
          best = it->second;
          at = i;
        }
      }
      if (best == SIZE_MAX) break;
      sym[at] += sym[at + 1];
      sym.erase(sym.begin() + std::ptrdiff_t(at) + 1);
    }
    std::vector<int32_t> want;
    for (const auto& s : sym) want.push_back(t.token_to_id(s));
    EXPECT_EQ(t.encode(w), want) << w;
  }
}
