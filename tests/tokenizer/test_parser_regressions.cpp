// Inputs libFuzzer found to break the parsers (committed in fuzz/corpus/<harness>/regress-*): each must
// now be refused with a tinyvlm error naming the file, never read out of bounds, overflow or leak a
// library's own message.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "tokenizer/bpe.h"
#include "tokenizer/shards.h"

using namespace tv;
namespace fs = std::filesystem;

namespace {
const fs::path kCorpus = fs::path(TV_FIXTURE_DIR) / ".." / ".." / "fuzz" / "corpus";

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(ParserRegressions, ShardTokenCountsThatWrapAreRefused) {
  for (const char* name : {"regress-count-wraps.bin", "regress-count-huge.bin"}) {
    const std::string path = (kCorpus / "shards" / name).string();
    ASSERT_TRUE(fs::exists(path)) << path;
    std::string e = error_of([&] { tok::ShardReader r(path); });
    EXPECT_NE(e.find(path), std::string::npos) << e;
    EXPECT_NE(e.find("header promises"), std::string::npos) << e;
  }
  // The seeds still read.
  tok::ShardReader ok((kCorpus / "shards" / "small.bin").string());
  EXPECT_EQ(ok.size(), 5u);
}

TEST(ParserRegressions, TokenizerNumberOverflowNamesTheFile) {
  for (const char* name : {"regress-number-overflow.json", "regress-id-overflow.json"}) {
    const std::string path = (kCorpus / "tokenizer_json" / name).string();
    std::string e = error_of([&] { tok::Tokenizer::load(path); });
    EXPECT_NE(e.find(path), std::string::npos) << e;
    EXPECT_EQ(e.find("[json.exception"), std::string::npos) << e;
  }
}

TEST(ParserRegressions, SafetensorsNegativeDimensionIsRefused) {
  const std::string path = (kCorpus / "safetensors" / "regress-negative-dim.safetensors").string();
  std::string e = error_of([&] { SafetensorsFile f(path); });
  EXPECT_NE(e.find(path), std::string::npos) << e;
}
