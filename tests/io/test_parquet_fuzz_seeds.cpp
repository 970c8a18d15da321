// The fuzz harness (fuzz/fuzz_parquet.cpp) built into the ordinary test binary: every committed seed and a
// sweep of byte changes to each go through it, so the harness keeps compiling and its seeds keep reading
// cleanly in builds without libFuzzer. The fuzzing itself runs in the clang -DTINYVLM_FUZZ=ON build.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "../../fuzz/fuzz_parquet.cpp"

TEST(ParquetFuzzSeeds, EverySeedAndDamagedCopyRunsThroughTheHarness) {
  const std::filesystem::path dir = std::filesystem::path(TV_FIXTURE_DIR) / ".." / ".." / "fuzz" / "corpus" / "parquet";
  int seeds = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(e.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string bytes = ss.str();
    ASSERT_GT(bytes.size(), 12u) << e.path();
    // The seed itself reads without an error.
    tv::pq::ParquetFile f(e.path().string());
    for (int g = 0; g < f.num_row_groups(); ++g)
      for (int c : f.nodes()[0].children) tv::pq::read_field(f, g, f.nodes()[size_t(c)].element->name);
    EXPECT_EQ(LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), 0);
    for (size_t i = 0; i < bytes.size(); i += 61) {
      std::string b = bytes;
      b[i] = char(b[i] + 1);
      EXPECT_EQ(LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(b.data()), b.size()), 0);
    }
    ++seeds;
  }
  EXPECT_GE(seeds, 7);
}
