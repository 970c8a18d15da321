// Phase-4 data: the chosen / rejected sequences against the original's DPO dataset (tests/fixtures/dpo/pairs.json,
// written by scripts/fixtures/dpo_fixtures.py with HuggingFace tokenizers), the rlaif-v_formatted rows as JSONL
// (image as a path, base64 bytes or a data URL) and as Parquet (tests/fixtures/parquet/rlaif.parquet), the plain
// {image, question, chosen, rejected} layout, and skipped pairs, counted and named; errors name file and line.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/ignore_index.h"
#include "data/dpo_data.h"
#include "io/atomic_file.h"
#include "tokenizer/bpe.h"
#include "train/dpo_batches.h"

using namespace tv;
namespace fs = std::filesystem;

namespace {

const std::string kFix = std::string(TV_FIXTURE_DIR);

struct TempDir {
  fs::path dir = fs::temp_directory_path() / ("tinyvlm_dpo_data_" + std::to_string(getpid()));
  TempDir() {
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

std::string base64(const std::string& s) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < s.size(); i += 3) {
    const uint32_t v = uint32_t(uint8_t(s[i])) << 16 | uint32_t(uint8_t(s[i + 1])) << 8 | uint8_t(s[i + 2]);
    for (int j = 18; j >= 0; j -= 6) out += k[(v >> j) & 63];
  }
  if (i + 1 == s.size()) {
    const uint32_t v = uint32_t(uint8_t(s[i])) << 16;
    out += std::string{k[(v >> 18) & 63], k[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == s.size()) {
    const uint32_t v = uint32_t(uint8_t(s[i])) << 16 | uint32_t(uint8_t(s[i + 1])) << 8;
    out += std::string{k[(v >> 18) & 63], k[(v >> 12) & 63], k[(v >> 6) & 63], '='};
  }
  return out;
}

std::vector<int32_t> row(const InstructTokens& t, const std::vector<int32_t>& v, int64_t r) {
  return std::vector<int32_t>(v.begin() + t.offsets[size_t(r)], v.begin() + t.offsets[size_t(r) + 1]);
}

std::vector<int32_t> first(const nlohmann::json& a, int64_t n) {
  std::vector<int32_t> v = a.get<std::vector<int32_t>>();
  v.resize(size_t(n));
  return v;
}

}  // namespace

TEST(DpoData, SequencesMatchTheOriginalsDataset) {
  std::ifstream in(kFix + "/dpo/pairs.json");
  const nlohmann::json fx = nlohmann::json::parse(in);
  const tok::Tokenizer tk = tok::Tokenizer::load(kFix + "/tokenizer/hf_tokenizer.json");
  int checked = 0, skipped_expected = 0;
  for (const auto& s : fx["samples"]) {
    SCOPED_TRACE(s["id"].get<std::string>());
    const ConversationFormat f = conversation_format(tk, fx["vocab_size"], s["max_seq_len"], "hf_tokenizer.json");
    DpoSet set;
    set.pairs.push_back({s["id"], "img.png", s["question"], s["chosen"], s["rejected"]});
    std::vector<SkippedSample> skipped;
    const DpoTokens t = tokenize_dpo(tk, set, f, skipped);
    if (s["response_tokens"].get<int>() == 0) {
      EXPECT_EQ(t.pairs(), 0);
      ASSERT_EQ(skipped.size(), 1u);
      EXPECT_EQ(skipped[0].id, s["id"].get<std::string>());
      EXPECT_NE(skipped[0].reason.find("empty response"), std::string::npos);
      ++skipped_expected;
      continue;
    }
    ASSERT_EQ(t.pairs(), 1);
    EXPECT_TRUE(skipped.empty());
    EXPECT_EQ(row(t.rows, t.rows.ids, 0), first(s["chosen_ids"], s["chosen_length"]));
    EXPECT_EQ(row(t.rows, t.rows.labels, 0), first(s["chosen_labels"], s["chosen_length"]));
    EXPECT_EQ(row(t.rows, t.rows.ids, 1), first(s["rejected_ids"], s["rejected_length"]));
    EXPECT_EQ(row(t.rows, t.rows.labels, 1), first(s["rejected_labels"], s["rejected_length"]));
    EXPECT_EQ(t.rows.truncated, s["chosen_length"].get<int>() == s["max_seq_len"].get<int>() ? 1 : 0);
    // As one batch: chosen rows then rejected rows, padded with <pad> to the longest, padding ignored.
    std::vector<int32_t> ids, labels;
    const int64_t S = dpo_batch_rows(t, {0}, f, ids, labels);
    EXPECT_EQ(S, std::max(s["chosen_length"].get<int64_t>(), s["rejected_length"].get<int64_t>()));
    EXPECT_EQ(std::vector<int32_t>(ids.begin(), ids.begin() + S), first(s["chosen_ids"], S));
    EXPECT_EQ(std::vector<int32_t>(labels.begin() + S, labels.end()), first(s["rejected_labels"], S));
    ++checked;
  }
  EXPECT_EQ(checked, 3);
  EXPECT_EQ(skipped_expected, 1);
}

TEST(DpoData, RlaifJsonlWithPathsBase64AndDataUrls) {
  TempDir t;
  std::string png;
  {
    std::ifstream f(kFix + "/images/" + fs::directory_iterator(kFix + "/images")->path().filename().string(), std::ios::binary);
    png.assign(std::istreambuf_iterator<char>(f), {});
  }
  ASSERT_FALSE(png.empty());
  write_file_atomic((t.dir / "a.png").string(), png);
  auto msg = [](const char* role, nlohmann::json content) { return nlohmann::json::array({{{"role", role}, {"content", content}}}); };
  auto row = [&](nlohmann::json images, const std::string& q) {
    return nlohmann::json{{"prompt", msg("user", nlohmann::json::array({{{"type", "image"}, {"text", nullptr}},
                                                                         {{"type", "text"}, {"text", q}}}))},
                          {"chosen", msg("assistant", nlohmann::json::array({{{"type", "text"}, {"text", "good " + q}}}))},
                          {"rejected", msg("assistant", "bad " + q)},
                          {"images", images}};
  };
  std::string lines;
  lines += row(nlohmann::json::array({"a.png"}), "q1").dump() + "\n";
  lines += row(nlohmann::json::array({{{"bytes", base64(png)}, {"path", nullptr}}}), "q2").dump() + "\n";
  lines += "\n";  // blank lines are passed over
  lines += row(nlohmann::json::array({"data:image/png;base64," + base64(png)}), "q3").dump() + "\n";
  lines += row(nlohmann::json::array(), "q4").dump() + "\n";                                         // no image
  lines += row(nlohmann::json::array({"missing.png"}), "q5").dump() + "\n";                          // not found
  lines += row(nlohmann::json::array({{{"bytes", "!!notbase64"}, {"path", nullptr}}}), "q6").dump() + "\n";  // corrupt
  lines += nlohmann::json{{"id", 77}, {"image", "a.png"}, {"question", "q7"}, {"chosen", "c7"}, {"rejected", "r7"}}.dump() + "\n";
  const std::string path = (t.dir / "pairs.jsonl").string();
  write_file_atomic(path, lines);
  DpoSet s = load_dpo(path, "");
  EXPECT_EQ(s.records, 7);
  ASSERT_EQ(s.pairs.size(), 4u);
  EXPECT_EQ(s.pairs[0].question, "q1");
  EXPECT_EQ(s.pairs[0].chosen, "good q1");
  EXPECT_EQ(s.pairs[0].rejected, "bad q1");
  EXPECT_EQ(s.pairs[0].image, (t.dir / "a.png").string());
  EXPECT_EQ(s.pairs[0].id, "pairs.jsonl:1");
  for (int i : {1, 2}) {  // embedded: written once into tinyvlm_images beside the file, named by content
    EXPECT_EQ(fs::path(s.pairs[size_t(i)].image).parent_path(), t.dir / "tinyvlm_images");
    std::ifstream f(s.pairs[size_t(i)].image, std::ios::binary);
    EXPECT_EQ(std::string(std::istreambuf_iterator<char>(f), {}), png);
  }
  EXPECT_EQ(s.pairs[1].image, s.pairs[2].image);
  EXPECT_EQ(s.pairs[3].id, "77");
  EXPECT_EQ(s.pairs[3].question, "q7");
  ASSERT_EQ(s.skipped.size(), 3u);
  EXPECT_EQ(s.skipped[0].reason, "no image");
  EXPECT_EQ(s.skipped[0].id, "pairs.jsonl:5");
  EXPECT_NE(s.skipped[1].reason.find("image not found: missing.png"), std::string::npos);
  EXPECT_NE(s.skipped[2].reason.find("corrupt image"), std::string::npos);
}

TEST(DpoData, MalformedRowsNameFileAndLine) {
  TempDir t;
  const std::string path = (t.dir / "bad.jsonl").string();
  auto error_of = [&](const std::string& text) {
    write_file_atomic(path, text);
    try {
      load_dpo(path, "");
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string ok = R"({"image": "x.png", "question": "q", "chosen": "c", "rejected": "r"})";
  std::string e = error_of(ok + "\n{not json\n");
  EXPECT_NE(e.find("bad.jsonl:2"), std::string::npos) << e;
  e = error_of(ok + "\n" + ok + "\n" + R"({"image": "x.png", "question": "q", "chosen": "c"})" + "\n");
  EXPECT_NE(e.find("bad.jsonl:3"), std::string::npos) << e;
  EXPECT_NE(e.find("rejected"), std::string::npos) << e;
  e = error_of(R"({"prompt": [{"role": "user", "content": [{"type": "image"}]}], "chosen": "c", "rejected": "r"})");
  EXPECT_NE(e.find("bad.jsonl:1"), std::string::npos) << e;
  EXPECT_NE(e.find("text part"), std::string::npos) << e;
  e = error_of(R"({"question": 5, "chosen": "c", "rejected": "r"})");
  EXPECT_NE(e.find("question"), std::string::npos) << e;
  e = error_of("[" + ok + "]");
  EXPECT_NE(e.find("JSONL"), std::string::npos) << e;
}

TEST(DpoData, RlaifParquetAsHuggingFacePublishesIt) {
  TempDir t;
  DpoSet s = load_dpo(kFix + "/parquet/rlaif.parquet", t.dir.string());
  EXPECT_EQ(s.records, 12);
  ASSERT_EQ(s.pairs.size(), 10u);  // rows 4 and 9 have no image
  ASSERT_EQ(s.skipped.size(), 2u);
  EXPECT_EQ(s.skipped[0].id, "rlaif.parquet:4");
  EXPECT_EQ(s.skipped[0].reason, "no image");
  EXPECT_EQ(s.pairs[0].question.rfind("What is shown in picture 0?", 0), 0u) << s.pairs[0].question;
  EXPECT_EQ(s.pairs[0].chosen.rfind("A good answer: ", 0), 0u) << s.pairs[0].chosen;
  EXPECT_EQ(s.pairs[0].rejected.rfind("A worse answer ", 0), 0u) << s.pairs[0].rejected;
  EXPECT_EQ(s.pairs[4].id, "rlaif.parquet:5");
  for (const DpoPair& p : s.pairs) {
    EXPECT_EQ(fs::path(p.image).parent_path(), t.dir);
    EXPECT_TRUE(fs::exists(p.image)) << p.image;
  }
}

TEST(DpoData, Base64) {
  std::string out;
  EXPECT_TRUE(decode_base64_lenient("aGVsbG8=", out));
  EXPECT_EQ(out, "hello");
  EXPECT_TRUE(decode_base64_lenient("aGVs\nbG8", out));
  EXPECT_EQ(out, "hello");
  EXPECT_FALSE(decode_base64_lenient("aGVsbG8=x", out));
  EXPECT_FALSE(decode_base64_lenient("a", out));
  EXPECT_FALSE(decode_base64_lenient("a*bc", out));
}
