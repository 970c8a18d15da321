// `tinyvlm ask` and `chat` as a user runs them, on the original's phase-3 checkpoint fixture
// (tests/fixtures/torch/tiny_instruct.pt): the reference's greedy answer, the same text streamed as
// decoded, option errors naming the option, a piped chat session; inspect and convert know the kind.
#include <unistd.h>
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "tokenizer/bpe.h"

using namespace tv;
namespace fs = std::filesystem;

namespace {

const std::string kDir = std::string(TV_FIXTURE_DIR) + "/torch/";
const std::string kModel = " --model " + kDir + "tiny_instruct.pt --config " + kDir + "ask_config.toml --tokenizer " +
                           kDir + "ask_tokenizer.json --image " + kDir + "ask_image.png --threads 1";

struct Result {
  int code = -1;
  std::string out;
};

Result run(const std::string& args, bool with_stderr = true) {
  std::string cmd = std::string(TV_TINYVLM_BIN) + " " + args + (with_stderr ? " 2>&1" : " 2>/dev/null");
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

std::vector<int32_t> expected_greedy() {
  Tensor t = SafetensorsFile(kDir + "ask_expected.safetensors").get("greedy_ids");
  return std::vector<int32_t>(t.data<int32_t>(), t.data<int32_t>() + t.numel());
}

}  // namespace

TEST(CliAsk, GreedyAnswerIsTheReferencesWithAndWithoutCache) {
  const std::vector<int32_t> greedy = expected_greedy();
  std::string ids;
  for (int32_t t : greedy) ids += (ids.empty() ? "" : " ") + std::to_string(t);
  const std::string q = "ask" + kModel + " --prompt \"What colour is the shape?\" --max-tokens " +
                        std::to_string(greedy.size());
  Result a = run(q + " --print-ids", false), b = run(q + " --print-ids --no-cache", false);
  ASSERT_EQ(a.code, 0) << a.out;
  EXPECT_EQ(a.out, ids + "\n");
  EXPECT_EQ(b.out, a.out);
  // The streamed text is the decode of those tokens.
  Result text = run(q, false);
  ASSERT_EQ(text.code, 0);
  const tok::Tokenizer tk = tok::Tokenizer::load(kDir + "ask_tokenizer.json");
  EXPECT_EQ(text.out, tk.decode(greedy) + "\n");
  Result stats = run(q);
  EXPECT_NE(stats.out.find("first token at"), std::string::npos) << stats.out;
}

TEST(CliAsk, BadOptionsNameTheOption) {
  const std::string q = "ask" + kModel + " --prompt hi";
  for (const char* opt : {"--top-k -1", "--temperature -1", "--repetition-penalty 0", "--max-tokens 0", "--top-p 1.5"}) {
    Result r = run(q + " " + opt);
    EXPECT_EQ(r.code, 1) << opt;
    const std::string name = std::string(opt).substr(0, std::string(opt).find(' '));
    EXPECT_NE(r.out.find(name), std::string::npos) << opt << ": " << r.out;
  }
  // A decoder-only checkpoint is not a vision-language model.
  Result d = run("ask --model " + std::string(TV_FIXTURE_DIR) + "/torch/tiny_checkpoint.pt --config " +
                 std::string(TV_FIXTURE_DIR) + "/model/tiny_config.toml --tokenizer " + kDir + "ask_tokenizer.json --image " +
                 kDir + "ask_image.png --prompt hi");
  EXPECT_EQ(d.code, 1);
  EXPECT_NE(d.out.find("tinyvlm generate"), std::string::npos) << d.out;
}

TEST(CliChat, PipedConversation) {
  const fs::path dir = fs::temp_directory_path() / ("tinyvlm_chat_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string input = (dir / "in.txt").string();
  write_file_atomic(input, "What colour is the shape?\n/bogus\nAnd where is it?\n/reset\n/image " + kDir +
                               "ask_image.png\nIs it round?\nIs it big?\nIs it small?\n/quit\nnever read\n");
  Result r = run("chat" + kModel + " --max-tokens 8 < " + input);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("unknown command /bogus"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("conversation cleared"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("dropped the"), std::string::npos) << "the 47-token context fills: " << r.out;
  // Five answers, one line each on stdout.
  Result o = run("chat" + kModel + " --max-tokens 8 < " + input, false);
  EXPECT_EQ(std::count(o.out.begin(), o.out.end(), '\n'), 5) << o.out;
  // The cache kept between turns (and rebuilt when old exchanges are dropped) changes nothing: the
  // whole conversation recomputed for every token answers the same.
  Result nc = run("chat" + kModel + " --max-tokens 8 --no-cache < " + input, false);
  EXPECT_EQ(nc.out, o.out);
  // The first answer is the reference's greedy answer to the same question, cut at 8 tokens.
  const std::vector<int32_t> greedy = expected_greedy();
  const tok::Tokenizer tk = tok::Tokenizer::load(kDir + "ask_tokenizer.json");
  EXPECT_EQ(o.out.substr(0, o.out.find('\n')), tk.decode(std::vector<int32_t>(greedy.begin(), greedy.begin() + 8)));
  fs::remove_all(dir);
}

TEST(CliInspect, NamesTheVisionLanguageCheckpointKinds) {
  Result a = run("inspect " + kDir + "tiny_instruct.pt --json", false);
  ASSERT_EQ(a.code, 0);
  EXPECT_NE(nlohmann::json::parse(a.out)["kind"].get<std::string>().find("phase-3/4"), std::string::npos) << a.out;
  Result b = run("inspect " + kDir + "tiny_vlm.pt");
  EXPECT_NE(b.out.find("phase-2 names"), std::string::npos) << b.out;
}

TEST(CliConvert, VisionLanguagePtConvertsAndAnswersWithoutConfig) {
  const fs::path dir = fs::temp_directory_path() / ("tinyvlm_convert_vlm_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string out = (dir / "instruct.safetensors").string();
  Result bad = run("convert " + kDir + "tiny_instruct.pt " + out + " --config " + kDir + "ask_config.toml --set image_size=48");
  EXPECT_EQ(bad.code, 1) << bad.out;
  EXPECT_FALSE(fs::exists(out));
  Result c = run("convert " + kDir + "tiny_instruct.pt " + out + " --config " + kDir + "ask_config.toml");
  ASSERT_EQ(c.code, 0) << c.out;
  const std::string q = " --tokenizer " + kDir + "ask_tokenizer.json --image " + kDir +
                        "ask_image.png --prompt \"What colour is the shape?\" --max-tokens 6 --print-ids --threads 1";
  Result x = run("ask --model " + out + q, false);
  Result y = run("ask --model " + kDir + "tiny_instruct.pt --config " + kDir + "ask_config.toml" + q, false);
  ASSERT_EQ(x.code, 0) << x.out;
  EXPECT_EQ(x.out, y.out);
  fs::remove_all(dir);
}
