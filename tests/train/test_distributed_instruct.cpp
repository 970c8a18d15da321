// Data parallelism in phase 3 (docs/distributed.md): `tinyvlm instruct` (projector and decoder training
// on conversations, with skipped samples and an unreadable image in the data) on 2 MPI ranks of one thread
// gives the losses, the weights and the skipped-sample report of the same global batch in one process bit
// for bit; a 2-rank run stopped and resumed equals the uninterrupted one bit for bit; ZeRO-1 equals plain.
// Every rank steps past the others' micro-batches through `TrainTask::skip_micro`, so these runs also
// check that all ranks stay on the same rows (the rows of a batch depend on which images could be read).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "train/align.h"
#include "train/test_align_util.h"

using namespace tv;
using namespace tv::align_test;

namespace {

// The phase-3 world of tests/train/test_instruct.cpp: a phase-2 checkpoint made here from the alignment
// tests' tiny world, and 24 two-turn conversations over its synthetic images plus four samples that are
// skipped (no image, image not found, unreadable image, no assistant token left after truncation).
struct DistInstructWorld {
  std::string phase2, data;
  DistInstructWorld() {
    World& w = world();
    AlignOptions o;
    o.config = w.config;
    o.llm = w.llm;
    o.vit = w.vit;
    o.captions = w.captions;
    o.images = w.images;
    o.out = w.fresh("dist_phase2");
    o.quiet = true;
    o.threads = 1;
    o.steps = 2;
    align(o);
    phase2 = checkpoint_path(o.out, "best");
    const char* colours[] = {"red", "green", "blue", "yellow"};
    std::string lines;
    for (int i = 0; i < 24; ++i) {
      char name[32];
      std::snprintf(name, sizeof name, "img%04d.png", i);
      nlohmann::json conv = {{{"from", "human"}, {"value", "<image>\nWhat colour is the shape?"}},
                             {{"from", "gpt"}, {"value", colours[i % 4]}},
                             {{"from", "human"}, {"value", "Is it big?"}},
                             {{"from", "gpt"}, {"value", i % 3 ? "yes" : "no"}}};
      lines += nlohmann::json{{"id", "s" + std::to_string(i)}, {"image", name}, {"conversations", conv}}.dump() + "\n";
    }
    nlohmann::json qa = {{{"from", "human"}, {"value", "What is it?"}}, {{"from", "gpt"}, {"value", "a shape"}}};
    lines += nlohmann::json{{"id", "no_image"}, {"conversations", qa}}.dump() + "\n";
    lines += nlohmann::json{{"id", "missing"}, {"image", "missing.jpg"}, {"conversations", qa}}.dump() + "\n";
    lines += nlohmann::json{{"id", "damaged"}, {"image", "corrupt.png"}, {"conversations", qa}}.dump() + "\n";
    nlohmann::json long_q = {{{"from", "human"},
                              {"value", "a very long question that goes on and on about the picture and its colours "
                                        "and its shapes and its background and its size and its position and its "
                                        "corners and never lets the answer in"}},
                             {{"from", "gpt"}, {"value", "unseen"}}};
    lines += nlohmann::json{{"id", "too_long"}, {"image", "img0001.png"}, {"conversations", long_q}}.dump() + "\n";
    data = (fs::path(w.dir) / "dist_conversations.jsonl").string();
    write_file_atomic(data, lines);
  }
};

DistInstructWorld& iworld() {
  static DistInstructWorld w;
  return w;
}

// `ranks` 0: a plain process, no mpirun. Batches of 2 conversations, 2 micro-batches per step unless
// `extra` says otherwise; the data crosses an epoch every 5 steps.
int run_instruct(int ranks, const std::string& out, const std::string& extra, std::string* log) {
  std::string cmd;
  if (ranks > 0)
    cmd = "mpirun --oversubscribe --allow-run-as-root -np " + std::to_string(ranks) + " -x OMP_NUM_THREADS=1 ";
  cmd += std::string(TV_TINYVLM_BIN) + " instruct --model " + iworld().phase2 + " --data " + iworld().data +
         " --images " + world().images + " --out " + out + " --threads 1" +
         " --set instruct_coco_only=false --set instruct_batch_size=2 --set instruct_grad_accum=2"
         " --set instruct_max_seq_len=64 --set instruct_learning_rate=0.003 --set instruct_warmup_steps=2"
         " --set instruct_val_fraction=0.2 --set instruct_val_batches=2 --set instruct_val_every=3"
         " --set instruct_batches_per_epoch=10 --set instruct_log_interval=1000 --set instruct_image_workers=2 " +
         extra + " > " + out + ".log 2>&1";
  const int rc = std::system(cmd.c_str());
  std::ifstream in(out + ".log");
  std::stringstream ss;
  ss << in.rdbuf();
  *log = ss.str();
  return rc;
}

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool have_mpirun() { return std::system("command -v mpirun > /dev/null 2>&1") == 0; }

void expect_same_losses(const std::string& a_dir, const std::string& b_dir, size_t steps) {
  auto a = train_losses(a_dir), b = train_losses(b_dir);
  ASSERT_EQ(a.size(), steps) << a_dir;
  ASSERT_EQ(b.size(), steps) << b_dir << ": rank 0 alone writes the metrics, once per step";
  for (auto& [step, loss] : a) EXPECT_EQ(loss, b.at(step)) << "step " << step;
}

}  // namespace

// One micro-batch per rank (grad_accum 2 on 2 ranks) and two per rank (grad_accum 4): both are powers of
// two, so the reduction tree is the one of a single process and the bits agree.
TEST(DistributedInstruct, TwoRanksGiveTheLossesWeightsAndSkippedSamplesOfOneBitForBit) {
  ASSERT_TRUE(have_mpirun()) << "mpirun not found: install openmpi-bin (scripts/install_deps.sh)";
  for (const std::string accum : {"2", "4"}) {
    SCOPED_TRACE("instruct_grad_accum = " + accum);
    const std::string one = world().fresh("di_one"), two = world().fresh("di_two");
    const std::string extra = "--steps 6 --set instruct_grad_accum=" + accum;
    std::string log;
    ASSERT_EQ(run_instruct(0, one, extra, &log), 0) << log;
    ASSERT_EQ(run_instruct(2, two, extra, &log), 0) << log;
    EXPECT_NE(log.find("2 ranks"), std::string::npos) << log;
    expect_same_losses(one, two, 6);
    auto a = train_losses(one);
    EXPECT_LT(a.at(6), a.at(1)) << "the loss should fall";
    EXPECT_TRUE(file_bytes(one + "/last.state.safetensors") == file_bytes(two + "/last.state.safetensors"))
        << "the weights or the moments differ between 1 process and 2 ranks";
    // Rank 0 stepped through the other rank's rows too, so it met the same unreadable image.
    const std::string skipped = file_bytes(one + "/skipped_samples.tsv");
    EXPECT_NE(skipped.find("corrupt.png"), std::string::npos) << skipped;
    EXPECT_EQ(skipped, file_bytes(two + "/skipped_samples.tsv"));
  }
}

// Stopped after 4 steps (past a validation and before the epoch boundary at 5) and resumed on 2 ranks.
TEST(DistributedInstruct, TwoRankRunStoppedAndResumedEqualsUninterrupted) {
  ASSERT_TRUE(have_mpirun()) << "mpirun not found: install openmpi-bin (scripts/install_deps.sh)";
  const std::string full = world().fresh("di_full"), part = world().fresh("di_part");
  std::string log;
  ASSERT_EQ(run_instruct(2, full, "--steps 8", &log), 0) << log;
  ASSERT_EQ(run_instruct(2, part, "--steps 8 --stop-after 4", &log), 0) << log;
  EXPECT_EQ(train_losses(part).size(), 4u);
  ASSERT_EQ(run_instruct(2, part, "--steps 8 --resume", &log), 0) << log;
  expect_same_losses(full, part, 8);
  EXPECT_TRUE(file_bytes(full + "/last.state.safetensors") == file_bytes(part + "/last.state.safetensors"))
      << "the resumed run's weights or moments differ from the uninterrupted run's";
}

// ZeRO-1: the gathered moments give the same state file as the plain 2-rank run, and a sharded run
// stopped and resumed still equals it.
TEST(DistributedInstruct, ZeroOneEqualsPlainAndResumes) {
  ASSERT_TRUE(have_mpirun()) << "mpirun not found: install openmpi-bin (scripts/install_deps.sh)";
  const std::string plain = world().fresh("di_plain"), zero = world().fresh("di_zero"),
                    zpart = world().fresh("di_zpart");
  std::string log;
  ASSERT_EQ(run_instruct(2, plain, "--steps 6", &log), 0) << log;
  ASSERT_EQ(run_instruct(2, zero, "--steps 6 --zero 1", &log), 0) << log;
  EXPECT_NE(log.find("ZeRO-1"), std::string::npos) << log;
  expect_same_losses(plain, zero, 6);
  EXPECT_TRUE(file_bytes(plain + "/last.state.safetensors") == file_bytes(zero + "/last.state.safetensors"))
      << "the weights or the gathered moments differ from the plain run's";

  ASSERT_EQ(run_instruct(2, zpart, "--steps 6 --zero 1 --stop-after 3", &log), 0) << log;
  ASSERT_EQ(run_instruct(2, zpart, "--steps 6 --zero 1 --resume", &log), 0) << log;
  expect_same_losses(plain, zpart, 6);
  EXPECT_TRUE(file_bytes(plain + "/last.state.safetensors") == file_bytes(zpart + "/last.state.safetensors"));
}

// A step takes instruct_grad_accum batches (here one per rank), so instruct_epochs counts passes over the
// data whatever the ranks: 2 epochs of 4 batches are 4 steps, not 8.
TEST(DistributedInstruct, EpochsCountPassesOverTheDataWithSeveralBatchesPerStep) {
  ASSERT_TRUE(have_mpirun()) << "mpirun not found: install openmpi-bin (scripts/install_deps.sh)";
  const std::string out = world().fresh("di_epochs");
  std::string log;
  ASSERT_EQ(run_instruct(2, out, "--set instruct_epochs=2 --set instruct_batches_per_epoch=4", &log), 0) << log;
  EXPECT_EQ(train_losses(out).size(), 4u) << log;
}
