// `tinyvlm bench decode` on the small benchmark decoder: one JSON object with a row per batch size, the
// experts each batch ran, and clear errors for bad batch sizes. (Timings are printed, never asserted.)
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

namespace {

struct Result {
  int code = -1;
  std::string out;
};

Result run(const std::string& args) {
  std::string cmd = std::string(TV_TINYVLM_BIN) + " " + args + " 2>&1";
  Result r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace

TEST(CliBenchDecode, SmallDecoderGivesARowPerBatchSize) {
  Result r = run("bench decode --small --batches 1,3 --context 4 --steps 2 --warmup 1 --rounds 1 --threads 1 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out.substr(r.out.find('{')));
  ASSERT_EQ(j["batches"].size(), 2u);
  EXPECT_EQ(j["batches"][0]["batch"].get<int64_t>(), 1);
  EXPECT_EQ(j["batches"][1]["batch"].get<int64_t>(), 3);
  // One token picks top-2 of 8 experts in each MoE layer; three tokens pick at least 2, at most 6.
  EXPECT_DOUBLE_EQ(j["batches"][0]["experts_per_moe_layer"].get<double>(), 2.0);
  const double e3 = j["batches"][1]["experts_per_moe_layer"].get<double>();
  EXPECT_GE(e3, 2.0);
  EXPECT_LE(e3, 6.0);
  EXPECT_GT(j["batches"][1]["tokens_per_s"].get<double>(), 0.0);
}

TEST(CliBenchDecode, BadBatchSizesAreRefusedNamingTheOption) {
  for (const char* bad : {"0", "1,x", "", "300"}) {
    Result r = run(std::string("bench decode --small --batches '") + bad + "'");
    EXPECT_NE(r.code, 0) << bad;
    EXPECT_NE(r.out.find("--batches"), std::string::npos) << bad << ": " << r.out;
  }
}
