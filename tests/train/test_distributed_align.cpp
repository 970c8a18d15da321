// Data parallelism in phase 2: the alignment run (projector training through the frozen decoder and
// tower, with an unreadable image in the data) on 2 MPI ranks gives the losses and the weights of the
// same run in one process, bit for bit, and reports the same skipped samples.
#include <gtest/gtest.h>

#include <cstdlib>
#include <sstream>

#include "train/test_align_util.h"

using namespace tv::align_test;

namespace {

int run_align(int ranks, const std::string& out, const std::string& extra, std::string* log) {
  World& w = world();
  std::string cmd;
  if (ranks > 0)
    cmd = "mpirun --oversubscribe --allow-run-as-root -np " + std::to_string(ranks) + " -x OMP_NUM_THREADS=1 ";
  cmd += std::string(TV_TINYVLM_BIN) + " align --config " + w.config + " --llm " + w.llm + " --vit " + w.vit +
         " --captions " + w.captions + " --images " + w.images + " --out " + out + " --threads 1 " + extra + " > " +
         out + ".log 2>&1";
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

}  // namespace

TEST(DistributedAlign, TwoRanksGiveTheLossesAndWeightsOfOneBitForBit) {
  ASSERT_EQ(std::system("command -v mpirun > /dev/null 2>&1"), 0)
      << "mpirun not found: install openmpi-bin (scripts/install_deps.sh)";
  const std::string one = world().fresh("dist_one"), two = world().fresh("dist_two");
  std::string log;
  ASSERT_EQ(run_align(0, one, "--steps 8 --set vlm_grad_accum=2", &log), 0) << log;
  ASSERT_EQ(run_align(2, two, "--steps 8 --set vlm_grad_accum=2", &log), 0) << log;
  EXPECT_NE(log.find("2 ranks"), std::string::npos) << log;
  auto a = train_losses(one), b = train_losses(two);
  ASSERT_EQ(a.size(), 8u);
  ASSERT_EQ(b.size(), 8u);
  for (auto& [step, loss] : a) EXPECT_EQ(loss, b.at(step)) << "step " << step;
  EXPECT_TRUE(file_bytes(one + "/last.state.safetensors") == file_bytes(two + "/last.state.safetensors"))
      << "the projector or its moments differ between 1 process and 2 ranks";
}
