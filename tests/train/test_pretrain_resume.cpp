// Phase 1 end to end on a tiny corpus: the validation loss falls, and a run that is stopped (or killed
// with SIGKILL) and resumed produces exactly the losses of an uninterrupted run.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "data/demo_corpus.h"
#include "io/atomic_file.h"
#include "tokenizer/bpe.h"
#include "tokenizer/trainer.h"
#include "kernels/cpu/cpu_ops.h"
#include "train/pretrain.h"

extern char** environ;

using namespace tv;
namespace fs = std::filesystem;

namespace {

const char* kTinyConfig = R"(vocab_size = 320
d_model = 32
n_heads = 4
n_kv_heads = 2
n_layers = 4
max_seq_len = 16
num_experts = 4
num_experts_per_tok = 2
d_expert = 24
d_ff_standard = 40
rope_layers_ratio = 0.75
rope_theta = 10000
chunk_size = 6
batch_size = 4
lr = 1e-2
warmup_steps = 3
val_every = 5
val_batches = 4
shuffle = true
log_interval = 100
)";

struct Corpus {
  fs::path dir;
  std::string config, tokenizer, text;
  Corpus() {
    dir = fs::temp_directory_path() / ("tinyvlm_resume_" + std::to_string(getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    std::vector<std::string> docs = demo_documents(300, 7);
    std::vector<std::string_view> views(docs.begin(), docs.end());
    tok::TrainOptions opt;
    opt.vocab_size = 300;
    tok::Tokenizer tk = tok::train_bpe(views, opt);
    tokenizer = (dir / "tok.json").string();
    tk.save(tokenizer);
    text = (dir / "corpus.jsonl").string();
    std::string jsonl;
    for (const auto& d : docs) jsonl += nlohmann::json{{"text", d}}.dump() + "\n";
    write_file_atomic(text, jsonl);
    config = (dir / "config.toml").string();
    write_file_atomic(config, kTinyConfig);
  }
  ~Corpus() { fs::remove_all(dir); }
  PretrainOptions options(const std::string& run, int64_t steps) const {
    PretrainOptions o;
    o.config = config;
    o.tokenizer = tokenizer;
    o.data = {text};
    o.out = (dir / run).string();
    o.steps = steps;
    o.quiet = true;
    o.threads = -1;
    return o;
  }
};

// step -> train loss, from metrics.jsonl
std::map<int64_t, double> train_losses(const std::string& run_dir) {
  std::map<int64_t, double> out;
  std::ifstream in(run_dir + "/metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    if (j.value("split", "") == "train") out[j["step"].get<int64_t>()] = j["loss"].get<double>();
  }
  return out;
}

}  // namespace

TEST(PretrainResume, StoppedAndResumedRunEqualsUninterruptedBitForBit) {
  Corpus c;
  TrainResult full = pretrain(c.options("full", 12));
  EXPECT_TRUE(full.has_val);
  EXPECT_LT(full.best_val, full.first_val) << "validation loss should fall";

  PretrainOptions part = c.options("part", 12);
  part.stop_after = 5;
  pretrain(part);
  EXPECT_EQ(train_losses(part.out).size(), 5u);
  part.stop_after = -1;
  part.resume = true;
  pretrain(part);

  auto a = train_losses(c.options("full", 12).out), b = train_losses(part.out);
  ASSERT_EQ(a.size(), 12u);
  ASSERT_EQ(b.size(), 12u);
  for (auto& [step, loss] : a) EXPECT_EQ(loss, b.at(step)) << "step " << step;  // exact, not approximate
}

TEST(PretrainResume, KilledProcessResumesBitForBit) {
  Corpus c;
  const int64_t steps = 14;
  PretrainOptions ref = c.options("ref", steps);
  ref.sets = {"save_interval=1"};
  pretrain(ref);

  std::string out = (c.dir / "killed").string();
  std::vector<std::string> args = {TV_TINYVLM_BIN, "pretrain", "--config", c.config, "--data", c.text, "--tokenizer",
                                   c.tokenizer,    "--out",    out,       "--steps", std::to_string(steps),
                                   "--set",        "save_interval=1"};
  std::vector<char*> argv;
  for (auto& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);
  pid_t pid;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  ASSERT_EQ(posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ), 0);
  // Kill it mid-run: once a few steps are logged, at whatever point it has reached.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (train_losses(out).size() < 4 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  posix_spawn_file_actions_destroy(&fa);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the run finished before it could be killed";

  PretrainOptions resumed = c.options("killed", steps);
  resumed.sets = {"save_interval=1"};
  resumed.resume = true;
  pretrain(resumed);
  auto a = train_losses(ref.out), b = train_losses(out);
  ASSERT_EQ(b.size(), size_t(steps));
  for (auto& [step, loss] : a) EXPECT_EQ(loss, b.at(step)) << "step " << step;
}

// matmul_precision = "bf16": the same run with bf16 GEMM operands starts from the same loss up to rounding,
// learns, differs from fp32 (so the setting took effect), and resumes bit for bit too.
TEST(PretrainBf16, LearnsStaysCloseToFp32AndResumesBitForBit) {
  Corpus c;
  pretrain(c.options("fp32", 12));
  PretrainOptions full = c.options("bf16", 12);
  full.sets = {"matmul_precision=bf16"};
  TrainResult r = pretrain(full);
  EXPECT_TRUE(r.has_val);
  EXPECT_LT(r.best_val, r.first_val) << "validation loss should fall with bf16 matmuls";
  auto f32 = train_losses(c.options("fp32", 12).out), b16 = train_losses(full.out);
  ASSERT_EQ(b16.size(), 12u);
  EXPECT_NE(f32.at(1), b16.at(1)) << "bf16 rounding changed nothing: the setting was not applied";
  EXPECT_NEAR(b16.at(1), f32.at(1), 0.01 * f32.at(1)) << "first-step loss should differ only by rounding";

  PretrainOptions part = c.options("bf16_part", 12);
  part.sets = full.sets;
  part.stop_after = 5;
  pretrain(part);
  part.stop_after = -1;
  part.resume = true;
  pretrain(part);
  auto resumed = train_losses(part.out);
  ASSERT_EQ(resumed.size(), 12u);
  for (auto& [step, loss] : b16) EXPECT_EQ(loss, resumed.at(step)) << "step " << step;

  PretrainOptions bad = c.options("bad", 2);
  bad.sets = {"matmul_precision=fp16"};
  try {
    pretrain(bad);
    ADD_FAILURE() << "matmul_precision = fp16 was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("config.toml"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("expected \"fp32\" or \"bf16\""), std::string::npos) << e.what();
  }
}

// The same bf16 run on the emulated path (what a CPU without AVX512-BF16 takes): it learns, and its
// first loss equals the native path's up to summation order.
TEST(PretrainBf16, EmulatedPathLearnsLikeTheNativeOne) {
  Corpus c;
  PretrainOptions native = c.options("native", 8), emulated = c.options("emulated", 8);
  native.sets = emulated.sets = {"matmul_precision=bf16"};
  pretrain(native);
  tv::cpu::allow_native_bf16(false);
  TrainResult r;
  try {
    r = pretrain(emulated);
  } catch (...) {
    tv::cpu::allow_native_bf16(true);
    throw;
  }
  tv::cpu::allow_native_bf16(true);
  EXPECT_LT(r.best_val, r.first_val);
  auto a = train_losses(native.out), b = train_losses(emulated.out);
  ASSERT_EQ(b.size(), 8u);
  EXPECT_NEAR(b.at(1), a.at(1), 1e-4 * a.at(1));
}
