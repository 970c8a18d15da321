// `tinyvlm dpo` and `tinyvlm eval --task dpo` from the command line: help, and errors that say what is missing.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace {

struct Result {
  int code = -1;
  std::string out;
};

Result run(const std::string& args) {
  const std::string cmd = std::string(TV_TINYVLM_BIN) + " " + args + " 2>&1";
  Result r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

const std::string kVlm = std::string(TV_FIXTURE_DIR) + "/vlm/vlm_params.safetensors";

}  // namespace

TEST(CliDpo, HelpNamesEveryOption) {
  Result r = run("dpo --help");
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char* o : {"--model", "--data", "--images", "--out", "--val-data", "--ref", "--loss", "--beta", "--precompute-ref",
                        "--steps", "--resume", "--set"})
    EXPECT_NE(r.out.find(o), std::string::npos) << o;
  Result e = run("eval --help");
  EXPECT_NE(e.out.find("dpo"), std::string::npos);
  EXPECT_NE(e.out.find("--ref"), std::string::npos);
}

TEST(CliDpo, ErrorsSayWhatIsMissing) {
  Result r = run("dpo --data pairs.jsonl --out /tmp/never");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("--model"), std::string::npos) << r.out;
  r = run("dpo --model " + kVlm + " --data pairs.jsonl --out /tmp/never --loss squared");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("--loss"), std::string::npos) << r.out;
  r = run("eval --task dpo --model " + kVlm + " --data pairs.jsonl");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("--ref"), std::string::npos) << r.out;
  r = run("eval --task instruct --model " + kVlm + " --data x.json");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("--images is required"), std::string::npos) << r.out;
}
