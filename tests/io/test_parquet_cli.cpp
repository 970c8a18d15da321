// Parquet through the commands that take data: `tokenize` and `tokenizer train` on a Parquet corpus give
// the same outputs as on the same texts as JSONL, folders and globs work, and a wrong column is a clear error.
#include <unistd.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "io/parquet_source.h"
#include "data/token_source.h"

namespace fs = std::filesystem;

namespace {

std::string pq_fixture(const std::string& name) { return std::string(TV_FIXTURE_DIR) + "/parquet/" + name; }

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

struct CliRun {
  int rc;
  std::string err;
};

CliRun tinyvlm(const std::string& args, const std::string& dir) {
  const std::string err_file = dir + "/stderr.txt";
  const std::string cmd = std::string(TV_TINYVLM_BIN) + " " + args + " >/dev/null 2>" + err_file;
  const int rc = std::system(cmd.c_str());
  return {rc, read_all(err_file)};
}

std::string temp_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("tinyvlm_pqcli_" + std::to_string(getpid()) + "_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

}  // namespace

TEST(ParquetCli, TokenizeGivesTheSameShardsAsJsonl) {
  const std::string d = temp_dir("tokenize");
  const std::string tok = std::string(TV_FIXTURE_DIR) + "/tokenizer/tv_tokenizer.json";
  ASSERT_EQ(tinyvlm("tokenize --quiet --tokenizer " + tok + " --input " + pq_fixture("corpus.jsonl") + " --out " + d + "/j", d).rc, 0);
  CliRun r = tinyvlm("tokenize --quiet --tokenizer " + tok + " --input " + pq_fixture("corpus.parquet") + " --out " + d + "/p", d);
  ASSERT_EQ(r.rc, 0) << r.err;
  // The same through a glob.
  r = tinyvlm("tokenize --quiet --tokenizer " + tok + " --input '" + pq_fixture("corp*.parquet") + "' --out " + d + "/g", d);
  ASSERT_EQ(r.rc, 0) << r.err;
  int shards = 0;
  for (const auto& e : fs::directory_iterator(d + "/j")) {
    const std::string name = e.path().filename().string();
    if (name.rfind("shard_", 0) != 0) continue;
    ++shards;
    const std::string want = read_all(e.path().string());
    EXPECT_FALSE(want.empty());
    EXPECT_EQ(read_all(d + "/p/" + name), want) << name;
    EXPECT_EQ(read_all(d + "/g/" + name), want) << name;
  }
  EXPECT_GT(shards, 0);
  fs::remove_all(d);
}

TEST(ParquetCli, TokenizerTrainGivesTheSameTokenizerAsJsonl) {
  const std::string d = temp_dir("train");
  fs::create_directories(d + "/folder");
  fs::copy_file(pq_fixture("corpus.parquet"), d + "/folder/part-0.parquet");
  const std::string common = "tokenizer train --quiet --vocab-size 300 --min-frequency 1 --input ";
  ASSERT_EQ(tinyvlm(common + pq_fixture("corpus.jsonl") + " --out " + d + "/j.json", d).rc, 0);
  CliRun r = tinyvlm(common + d + "/folder --out " + d + "/p.json", d);  // a folder of Parquet files
  ASSERT_EQ(r.rc, 0) << r.err;
  const std::string want = read_all(d + "/j.json");
  EXPECT_GT(want.size(), 1000u);
  EXPECT_EQ(read_all(d + "/p.json"), want);
  fs::remove_all(d);
}

TEST(ParquetCli, WrongOrMissingColumnIsAClearError) {
  const std::string d = temp_dir("column");
  const std::string tok = std::string(TV_FIXTURE_DIR) + "/tokenizer/tv_tokenizer.json";
  CliRun r = tinyvlm("tokenize --quiet --tokenizer " + tok + " --input " + pq_fixture("corpus.parquet") + " --column id --out " + d + "/o", d);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("corpus.parquet, row group 0, column 'id', chunk at byte "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("found INT32"), std::string::npos) << r.err;
  r = tinyvlm("tokenize --quiet --tokenizer " + tok + " --input " + pq_fixture("corpus.parquet") + " --column body --out " + d + "/o", d);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("corpus.parquet: no column 'body' (footer at byte "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("the file has: id, text"), std::string::npos) << r.err;
  fs::remove_all(d);
}

TEST(ParquetCli, InspectPrintsSchemaRowGroupsAndCodecs) {
  const std::string d = temp_dir("inspect");
  const std::string cmd = std::string(TV_TINYVLM_BIN) + " inspect " + pq_fixture("captions.parquet") + " > " + d + "/out.txt 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  const std::string out = read_all(d + "/out.txt");
  EXPECT_NE(out.find("captions.parquet: Parquet, 10 rows in 3 row groups, 5 columns, codecs SNAPPY"), std::string::npos) << out;
  EXPECT_NE(out.find("image columns: image"), std::string::npos) << out;
  EXPECT_NE(out.find("  sentences: group (list), optional\n"), std::string::npos) << out;
  EXPECT_NE(out.find("  2: 2 rows, "), std::string::npos) << out;
  EXPECT_NE(out.find("  image.bytes  BYTE_ARRAY  SNAPPY; "), std::string::npos) << out;
  fs::remove_all(d);
}

// pretrain's raw-text input: a folder of Parquet files gives the token stream of the same texts as JSONL.
TEST(ParquetCli, PretrainTextStreamMatchesJsonl) {
  const std::string d = temp_dir("pretrain");
  fs::create_directories(d + "/folder");
  fs::copy_file(pq_fixture("corpus.parquet"), d + "/folder/a.parquet");
  const std::string tok = std::string(TV_FIXTURE_DIR) + "/tokenizer/tv_tokenizer.json";
  tv::TokenSourceInfo ij, ip;
  tv::TokenStream j = tv::open_token_stream({pq_fixture("corpus.jsonl")}, tok, &ij);
  tv::TokenStream p = tv::open_token_stream({d + "/folder"}, tok, &ip);
  ASSERT_GT(j.size, 100);
  ASSERT_EQ(p.size, j.size);
  EXPECT_EQ(ip.documents, ij.documents);
  std::vector<int32_t> a(size_t(j.size)), b(size_t(p.size));
  j.read(0, j.size, a.data());
  p.read(0, p.size, b.data());
  EXPECT_EQ(a, b);
  fs::remove_all(d);
}

TEST(ParquetCli, InvalidUtf8NamesFileRowGroupAndRow) {
  const std::string d = temp_dir("utf8");
  const std::string tok = std::string(TV_FIXTURE_DIR) + "/tokenizer/tv_tokenizer.json";
  // The binary `blob` column holds bytes that are not UTF-8.
  CliRun r = tinyvlm("tokenize --quiet --tokenizer " + tok + " --input " + pq_fixture("codec_none.parquet") +
                     " --column blob --out " + d + "/o", d);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("codec_none.parquet, row group 0, row "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(" of the text: invalid UTF-8"), std::string::npos) << r.err;
  r = tinyvlm("tokenize --quiet --invalid-utf8 skip --tokenizer " + tok + " --input " + pq_fixture("codec_none.parquet") +
              " --column blob --out " + d + "/o", d);
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("document(s) with ill-formed UTF-8"), std::string::npos) << r.err;
  fs::remove_all(d);
}

TEST(ParquetCli, RowReaderStreamsFilesAndPassesOverEmptyGroups) {
  tv::ParquetRowReader rows({pq_fixture("empty.parquet"), pq_fixture("corpus.parquet")}, {"text"});
  std::vector<std::string> texts;
  int groups = 0;
  while (rows.next_group()) {
    ++groups;
    EXPECT_NE(rows.where(0).find("corpus.parquet, row group "), std::string::npos);
    for (size_t r = 0; r < rows.rows(); ++r) texts.emplace_back(rows.value(0, r).bytes);
  }
  EXPECT_EQ(groups, 4);  // corpus.parquet's four; empty.parquet's one group has no rows
  ASSERT_EQ(texts.size(), 64u);
  EXPECT_EQ(texts[5].rfind("Document 5. ", 0), 0u) << texts[5];
  // A field one file lacks: the error names that file and its fields.
  tv::ParquetRowReader bad({pq_fixture("corpus.parquet"), pq_fixture("empty.parquet")}, {"text", "id"});
  int n = 0;
  try {
    while (bad.next_group()) ++n;
    ADD_FAILURE() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("empty.parquet: no column 'id' (footer at byte "), std::string::npos) << e.what();
  }
  EXPECT_EQ(n, 4);
  EXPECT_TRUE(tv::is_parquet_input(pq_fixture("corp*.parquet")));
  EXPECT_FALSE(tv::is_parquet_input(pq_fixture("corpus.json*")));
  EXPECT_EQ(tv::expand_inputs({pq_fixture("corpus.json*")}).size(), 2u);  // corpus.json and corpus.jsonl
}
