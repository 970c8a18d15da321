// Data parallelism over MPI (docs/distributed.md), end to end through the CLI: a 2-rank job
// (`mpirun -np 2`, one thread per rank) gives the losses and the final weights of the same run on one
// process bit for bit, and a 2-rank run stopped and resumed equals the uninterrupted one bit for bit.
// CI installs OpenMPI (scripts/install_deps.sh); without mpirun these tests fail and say so.
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "data/demo_corpus.h"
#include "io/atomic_file.h"
#include "tokenizer/bpe.h"
#include "tokenizer/trainer.h"

extern char** environ;
namespace fs = std::filesystem;

namespace {

const char* kConfig = R"(vocab_size = 320
d_model = 32
n_heads = 4
n_kv_heads = 2
n_layers = 2
max_seq_len = 16
num_experts = 4
num_experts_per_tok = 2
d_expert = 24
d_ff_standard = 40
rope_layers_ratio = 0.5
rope_theta = 10000
chunk_size = 6
batch_size = 2
grad_accum = 2
lr = 1e-2
warmup_steps = 3
val_every = 10
val_batches = 2
shuffle = true
log_interval = 100
)";

struct RunDir {
  fs::path dir;
  std::string config, tokenizer, text;
  RunDir() {
    dir = fs::temp_directory_path() / ("tinyvlm_dist_" + std::to_string(getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    std::vector<std::string> docs = tv::demo_documents(200, 11);
    std::vector<std::string_view> views(docs.begin(), docs.end());
    tv::tok::TrainOptions opt;
    opt.vocab_size = 300;
    tv::tok::Tokenizer tk = tv::tok::train_bpe(views, opt);
    tokenizer = (dir / "tok.json").string();
    tk.save(tokenizer);
    text = (dir / "corpus.jsonl").string();
    std::string jsonl;
    for (const auto& d : docs) jsonl += nlohmann::json{{"text", d}}.dump() + "\n";
    tv::write_file_atomic(text, jsonl);
    config = (dir / "config.toml").string();
    tv::write_file_atomic(config, kConfig);
  }
  ~RunDir() { fs::remove_all(dir); }

  // `ranks` 0: a plain process, no mpirun.
  int pretrain(int ranks, const std::string& run, const std::string& extra, std::string* log = nullptr) const {
    std::string cmd;
    if (ranks > 0)
      cmd = "mpirun --oversubscribe --allow-run-as-root -np " + std::to_string(ranks) + " -x OMP_NUM_THREADS=1 ";
    cmd += std::string(TV_TINYVLM_BIN) + " pretrain --config " + config + " --data " + text + " --tokenizer " +
           tokenizer + " --out " + (dir / run).string() + " --threads 1 " + extra + " > " +
           (dir / (run + ".log")).string() + " 2>&1";
    const int rc = std::system(cmd.c_str());
    if (log) {
      std::ifstream in(dir / (run + ".log"));
      std::stringstream ss;
      ss << in.rdbuf();
      *log = ss.str();
    }
    return rc;
  }
  std::map<int64_t, double> losses(const std::string& run) const {
    std::map<int64_t, double> out;
    std::ifstream in(dir / run / "metrics.jsonl");
    std::string line;
    while (std::getline(in, line)) {
      auto j = nlohmann::json::parse(line);
      if (j.value("split", "") == "train") out[j["step"].get<int64_t>()] = j["loss"].get<double>();
    }
    return out;
  }
  std::string bytes(const std::string& run, const std::string& file) const {
    std::ifstream in(dir / run / file, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
};

bool have_mpirun() { return std::system("command -v mpirun > /dev/null 2>&1") == 0; }

}  // namespace

TEST(Distributed, TwoRanksGiveTheLossesAndWeightsOfOneBitForBit) {
  ASSERT_TRUE(have_mpirun()) << "mpirun not found: install openmpi-bin (scripts/install_deps.sh)";
  RunDir s;
  std::string log;
  ASSERT_EQ(s.pretrain(0, "one", "--steps 20"), 0);
  ASSERT_EQ(s.pretrain(2, "two", "--steps 20", &log), 0) << log;
  EXPECT_NE(log.find("2 ranks"), std::string::npos) << log;
  auto a = s.losses("one"), b = s.losses("two");
  ASSERT_EQ(a.size(), 20u);
  ASSERT_EQ(b.size(), 20u) << "rank 0 alone writes the metrics, once per step";
  for (auto& [step, loss] : a) EXPECT_EQ(loss, b.at(step)) << "step " << step;
  EXPECT_LT(a.at(20), a.at(1)) << "the loss should fall";
  // The final weights: the same file, byte for byte.
  const std::string w1 = s.bytes("one", "last.safetensors"), w2 = s.bytes("two", "last.safetensors");
  ASSERT_FALSE(w1.empty());
  EXPECT_TRUE(w1 == w2) << "the weights of the 2-rank run differ from the 1-process run";
}

TEST(Distributed, TwoRankRunStoppedAndResumedEqualsUninterrupted) {
  ASSERT_TRUE(have_mpirun()) << "mpirun not found: install openmpi-bin (scripts/install_deps.sh)";
  RunDir s;
  std::string log;
  ASSERT_EQ(s.pretrain(2, "full", "--steps 12", &log), 0) << log;
  ASSERT_EQ(s.pretrain(2, "part", "--steps 12 --stop-after 5", &log), 0) << log;
  EXPECT_EQ(s.losses("part").size(), 5u);
  ASSERT_EQ(s.pretrain(2, "part", "--steps 12 --resume", &log), 0) << log;
  auto a = s.losses("full"), b = s.losses("part");
  ASSERT_EQ(a.size(), 12u);
  ASSERT_EQ(b.size(), 12u);
  for (auto& [step, loss] : a) EXPECT_EQ(loss, b.at(step)) << "step " << step;
  EXPECT_TRUE(s.bytes("full", "last.safetensors") == s.bytes("part", "last.safetensors"));
}

TEST(Distributed, AGlobalBatchThatDoesNotSplitIntoWholeMicroBatchesIsRefused) {
  ASSERT_TRUE(have_mpirun()) << "mpirun not found: install openmpi-bin (scripts/install_deps.sh)";
  RunDir s;
  std::string log;
  EXPECT_NE(s.pretrain(2, "odd", "--steps 2 --set grad_accum=3", &log), 0);
  EXPECT_NE(log.find("grad_accum = 3 is not a multiple of the 2 ranks"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(s.dir / "odd" / "last.safetensors"));
}

// ZeRO-1: the moments sharded across the ranks give the same losses, the same weights and, gathered for
// the checkpoint, the same optimizer state file as the plain 2-rank run; a sharded run resumes exactly.
TEST(Distributed, ZeroOneEqualsPlainAndResumes) {
  ASSERT_TRUE(have_mpirun()) << "mpirun not found: install openmpi-bin (scripts/install_deps.sh)";
  RunDir s;
  std::string log;
  ASSERT_EQ(s.pretrain(2, "plain", "--steps 12", &log), 0) << log;
  ASSERT_EQ(s.pretrain(2, "zero", "--steps 12 --zero 1", &log), 0) << log;
  EXPECT_NE(log.find("ZeRO-1"), std::string::npos) << log;
  auto a = s.losses("plain"), b = s.losses("zero");
  ASSERT_EQ(a.size(), 12u);
  ASSERT_EQ(b.size(), 12u);
  for (auto& [step, loss] : a) EXPECT_EQ(loss, b.at(step)) << "step " << step;
  // The state file holds the weights and the moments (the model file differs: its metadata records the
  // config, zero = 1 included).
  EXPECT_TRUE(s.bytes("plain", "last.state.safetensors") == s.bytes("zero", "last.state.safetensors"))
      << "the weights or the gathered moments differ from the plain run's";

  ASSERT_EQ(s.pretrain(2, "zpart", "--steps 12 --zero 1 --stop-after 5", &log), 0) << log;
  ASSERT_EQ(s.pretrain(2, "zpart", "--steps 12 --zero 1 --resume", &log), 0) << log;
  auto c = s.losses("zpart");
  ASSERT_EQ(c.size(), 12u);
  for (auto& [step, loss] : a) EXPECT_EQ(loss, c.at(step)) << "step " << step;
  EXPECT_TRUE(s.bytes("plain", "last.state.safetensors") == s.bytes("zpart", "last.state.safetensors"));
}

// A rank killed mid-run (SIGKILL) ends the whole job, not a hang; the last checkpoint stays loadable,
// and the run resumed from it on 2 ranks equals the uninterrupted 2-rank run bit for bit.
TEST(Distributed, KilledRankEndsTheJobAndTheRunResumesBitForBit) {
  ASSERT_TRUE(have_mpirun()) << "mpirun not found: install openmpi-bin (scripts/install_deps.sh)";
  RunDir s;
  std::string log;
  const std::string steps = "80";
  ASSERT_EQ(s.pretrain(2, "ref", "--steps " + steps + " --set save_interval=1 --set val_every=0", &log), 0) << log;

  const std::string out = (s.dir / "killed").string();
  std::vector<std::string> args = {"/bin/sh", "-c",
                                   "exec mpirun --oversubscribe --allow-run-as-root -np 2 -x OMP_NUM_THREADS=1 " +
                                       std::string(TV_TINYVLM_BIN) + " pretrain --config " + s.config + " --data " +
                                       s.text + " --tokenizer " + s.tokenizer + " --out " + out +
                                       " --threads 1 --steps " + steps +
                                       " --set save_interval=1 --set val_every=0 > " + out + ".log 2>&1"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t mpirun;
  ASSERT_EQ(posix_spawn(&mpirun, "/bin/sh", nullptr, nullptr, argv.data(), environ), 0);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (s.losses("killed").size() < 10 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  // Kill one rank: a child of mpirun.
  const std::string find = "pgrep -P " + std::to_string(mpirun) + " -n > " + out + ".pid";
  ASSERT_EQ(std::system(find.c_str()), 0) << "no rank process found under mpirun";
  std::ifstream pid_in(out + ".pid");
  pid_t rank_pid = 0;
  pid_in >> rank_pid;
  ASSERT_GT(rank_pid, 0);
  ASSERT_EQ(kill(rank_pid, SIGKILL), 0);
  // The job must end on its own, promptly.
  int status = 0;
  pid_t done = 0;
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while ((done = waitpid(mpirun, &status, WNOHANG)) == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (done == 0) {
    kill(mpirun, SIGKILL);
    waitpid(mpirun, &status, 0);
    FAIL() << "the job hung after a rank was killed";
  }
  EXPECT_FALSE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the job reported success after losing a rank";
  ASSERT_LT(s.losses("killed").size(), std::stoul(steps)) << "the run finished before a rank could be killed";

  ASSERT_EQ(s.pretrain(2, "killed", "--steps " + steps + " --set save_interval=1 --set val_every=0 --resume", &log), 0)
      << log;
  auto a = s.losses("ref"), b = s.losses("killed");
  ASSERT_EQ(b.size(), a.size());
  for (auto& [step, loss] : a) EXPECT_EQ(loss, b.at(step)) << "step " << step;
  EXPECT_TRUE(s.bytes("ref", "last.safetensors") == s.bytes("killed", "last.safetensors"));
}

// Two micro-batches per rank: each rank adds its pair, then the ranks' sums are added; one process adds
// the same pairs in the same tree, so the bits still agree.
TEST(Distributed, TwoMicroBatchesPerRankStillGiveTheBitsOfOneProcess) {
  ASSERT_TRUE(have_mpirun()) << "mpirun not found: install openmpi-bin (scripts/install_deps.sh)";
  RunDir s;
  std::string log;
  ASSERT_EQ(s.pretrain(0, "one", "--steps 6 --set grad_accum=4"), 0);
  ASSERT_EQ(s.pretrain(2, "two", "--steps 6 --set grad_accum=4", &log), 0) << log;
  EXPECT_NE(log.find("2 micro-batch(es) of each step per rank"), std::string::npos) << log;
  auto a = s.losses("one"), b = s.losses("two");
  ASSERT_EQ(a.size(), 6u);
  ASSERT_EQ(b.size(), 6u);
  for (auto& [step, loss] : a) EXPECT_EQ(loss, b.at(step)) << "step " << step;
  EXPECT_TRUE(s.bytes("one", "last.state.safetensors") == s.bytes("two", "last.state.safetensors"));
}
