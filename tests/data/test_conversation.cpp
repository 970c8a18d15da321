// Phase-3 formatting against the original's instruction dataset (tests/fixtures/instruct/conversations.json,
// written by scripts/fixtures/instruct_fixtures.py with HuggingFace tokenizers): ids and labels of
// multi-turn conversations, "<image>" inside messages, Unicode whitespace, odd roles, truncation that cuts an
// assistant turn; loading LLaVA JSON / JSONL, the original's image lookup, and skipped samples, named.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/ignore_index.h"
#include "data/conversation.h"
#include "data/instruct_data.h"
#include "io/atomic_file.h"
#include "tokenizer/bpe.h"

using namespace tv;
namespace fs = std::filesystem;

namespace {

const std::string kFix = std::string(TV_FIXTURE_DIR);

nlohmann::json fixture() {
  std::ifstream in(kFix + "/instruct/conversations.json");
  return nlohmann::json::parse(in);
}

std::vector<ConversationTurn> turns_of(const nlohmann::json& s) {
  std::vector<ConversationTurn> t;
  for (const auto& c : s["conversations"]) t.push_back({is_user_role(c["from"]), c["value"]});
  return t;
}

struct TempDir {
  fs::path dir = fs::temp_directory_path() / ("tinyvlm_conv_test_" + std::to_string(getpid()));
  TempDir() {
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

}  // namespace

TEST(Conversation, CleanMessageIsPythonReplaceAndStrip) {
  EXPECT_EQ(clean_message("<image>\nWhat is this?"), "What is this?");
  EXPECT_EQ(clean_message("a <image> b"), "a  b");
  EXPECT_EQ(clean_message("\u3000\u00a0 x y\t\n\u2028"), "x y");
  EXPECT_EQ(clean_message("  <image>  "), "");
  EXPECT_EQ(clean_message("caf\u00e9 "), "caf\u00e9");
  EXPECT_EQ(clean_message("\xff bad"), "\xff bad");  // invalid UTF-8 is kept, not stripped
  EXPECT_TRUE(is_user_role("human"));
  EXPECT_TRUE(is_user_role("human_1"));
  EXPECT_FALSE(is_user_role("Human"));  // the original's `'human' in turn['from']` is case-sensitive
  EXPECT_FALSE(is_user_role("gpt"));
  EXPECT_EQ(turn_text(true, "<image>\nHi"), " USER: Hi");
  EXPECT_EQ(turn_text(false, "Hello. "), " ASSISTANT: Hello.");
}

TEST(Conversation, IdsAndLabelsEqualTheOriginals) {
  const nlohmann::json fx = fixture();
  const tok::Tokenizer tk = tok::Tokenizer::load(kFix + "/tokenizer/hf_tokenizer.json");
  const int64_t vocab = fx["vocab_size"];
  int cut = 0;
  for (const auto& s : fx["samples"]) {
    SCOPED_TRACE(s["id"].get<std::string>());
    ConversationFormat f = conversation_format(tk, vocab, s["max_seq_len"], "hf_tokenizer.json");
    EXPECT_EQ(f.image_id, fx["image_token_id"].get<int32_t>());
    FormattedConversation c = format_conversation(tk, turns_of(s), f);
    const size_t n = s["length"];
    std::vector<int32_t> ids = s["input_ids"], labels = s["labels"];
    ASSERT_EQ(c.ids.size(), n);
    EXPECT_EQ(c.ids, std::vector<int32_t>(ids.begin(), ids.begin() + int64_t(n)));
    EXPECT_EQ(c.labels, std::vector<int32_t>(labels.begin(), labels.begin() + int64_t(n)));
    EXPECT_EQ(c.labelled(), s["labelled"].get<int64_t>());
    cut += c.truncated;
    // Padded to instruct_max_seq_len as the original pads: the same ids and labels, padding included.
    if (c.labelled() > 0) {
      InstructTokens t;
      t.ids = c.ids;
      t.labels = c.labels;
      t.offsets = {0, int64_t(n)};
      t.sample = {0};
      std::vector<int32_t> bi, bl;
      EXPECT_EQ(instruct_batch(t, {0}, f, true, bi, bl), f.max_seq_len);
      EXPECT_EQ(bi, ids);
      EXPECT_EQ(bl, labels);
      EXPECT_EQ(instruct_batch(t, {0}, f, false, bi, bl), int64_t(n));  // padded to the batch: nothing to pad
    }
  }
  EXPECT_EQ(cut, 2);
}

TEST(InstructData, LoadsJsonAndJsonlAndNamesEverySkippedSample) {
  TempDir t;
  const nlohmann::json fx = fixture();
  const tok::Tokenizer tk = tok::Tokenizer::load(kFix + "/tokenizer/hf_tokenizer.json");
  // The original's lookup: train/data, validation/data, train2017, val2017, the folder itself.
  for (const char* d : {"train/data", "validation/data", "train2017", "val2017", ""}) fs::create_directories(t.dir / d);
  std::ofstream(t.dir / "train2017" / "000000000001.jpg") << "x";
  std::ofstream(t.dir / "validation/data" / "000000000002.jpg") << "x";
  std::ofstream(t.dir / "val2017" / "000000000003.jpg") << "x";
  std::ofstream(t.dir / "000000000004.jpg") << "x";
  std::ofstream(t.dir / "train/data" / "000000000005.jpg") << "x";
  nlohmann::json records = fx["samples"];
  for (auto& r : records) {
    r.erase("input_ids");
    r.erase("labels");
  }
  records.push_back({{"id", "text_only"}, {"conversations", {{{"from", "human"}, {"value", "Hi"}}}}});
  records.push_back({{"id", "gone"}, {"image", "coco/train2017/000000000099.jpg"},
                     {"conversations", {{{"from", "human"}, {"value", "Hi"}}, {{"from", "gpt"}, {"value", "Yes"}}}}});
  records.push_back({{"id", "not_coco"}, {"image", "gqa/images/1.jpg"},
                     {"conversations", {{{"from", "human"}, {"value", "Hi"}}}}});
  const std::string json = (t.dir / "llava.json").string(), jsonl = (t.dir / "llava.jsonl").string();
  write_file_atomic(json, records.dump());
  std::string lines;
  for (const auto& r : records) lines += r.dump() + "\n";
  write_file_atomic(jsonl, lines);

  for (const std::string& path : {json, jsonl}) {
    SCOPED_TRACE(path);
    InstructSet coco = load_instruct(path, t.dir.string());
    EXPECT_EQ(coco.records, 8);
    EXPECT_EQ(coco.not_coco, 5);  // the fixture's bare COCO file names do not say "coco", nor does gqa/
    ASSERT_EQ(coco.samples.size(), 1u);
    EXPECT_EQ(coco.samples[0].image, (t.dir / "train2017" / "000000000001.jpg").string());

    InstructSet all = load_instruct(path, t.dir.string(), InstructLoadOptions{false});
    ASSERT_EQ(all.samples.size(), 5u);
    EXPECT_EQ(all.samples[1].image, (t.dir / "validation/data" / "000000000002.jpg").string());
    EXPECT_EQ(all.samples[2].image, (t.dir / "val2017" / "000000000003.jpg").string());
    EXPECT_EQ(all.samples[3].image, (t.dir / "000000000004.jpg").string());
    EXPECT_EQ(all.samples[4].image, (t.dir / "train/data" / "000000000005.jpg").string());
    ASSERT_EQ(all.skipped.size(), 3u);
    EXPECT_EQ(all.skipped[0].id, "text_only");
    EXPECT_EQ(all.skipped[0].reason, "no image");
    EXPECT_EQ(all.skipped[1].id, "gone");
    EXPECT_NE(all.skipped[1].reason.find("image not found"), std::string::npos);
    EXPECT_EQ(all.skipped[2].id, "not_coco");  // kept by the option, but its image is not there

    ConversationFormat f = conversation_format(tk, fx["vocab_size"], 128, "hf_tokenizer.json");
    f.max_seq_len = 24;  // the last fixture sample loses every assistant token
    std::vector<SkippedSample> skipped;
    InstructTokens tokens = tokenize_instruct(tk, all, f, skipped);
    bool named = false;
    for (const auto& s : skipped) named |= s.id == "no_assistant_left";
    EXPECT_TRUE(named);
    for (int64_t r = 0; r < tokens.rows(); ++r) EXPECT_LE(tokens.length(r), 24);
    EXPECT_EQ(tokens.rows() + int64_t(skipped.size()), 5);
    const std::string report = skipped_report(all.skipped);
    EXPECT_NE(report.find("3 samples skipped"), std::string::npos) << report;
    EXPECT_NE(report.find("text_only (no image)"), std::string::npos) << report;
  }
  // Malformed records are errors that name the file and the record.
  write_file_atomic(json, R"([{"id": "x", "image": "a.jpg", "conversations": [{"from": "human"}]}])");
  try {
    load_instruct(json, t.dir.string());
    FAIL() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("record 0"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("conversations[0]"), std::string::npos) << e.what();
  }
}

TEST(InstructData, PaddingToTheBatchKeepsEveryLabel) {
  InstructTokens t;
  t.ids = {9, 5, 6, 2, 9, 7, 2};
  t.labels = {kIgnoreIndex, kIgnoreIndex, 6, 2, kIgnoreIndex, 7, 2};
  t.offsets = {0, 4, 7};
  t.sample = {0, 1};
  ConversationFormat f;
  f.image_id = 9;
  f.pad_id = 3;
  f.max_seq_len = 10;
  std::vector<int32_t> ids, labels;
  EXPECT_EQ(instruct_batch(t, {1, 0}, f, false, ids, labels), 4);
  EXPECT_EQ(ids, (std::vector<int32_t>{9, 7, 2, 3, 9, 5, 6, 2}));
  EXPECT_EQ(labels, (std::vector<int32_t>{kIgnoreIndex, 7, 2, kIgnoreIndex, kIgnoreIndex, kIgnoreIndex, 6, 2}));
}
