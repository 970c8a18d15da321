// The gradient side of a step on one rank (train/data_parallel.h): a non-finite micro-batch among several
// leaves nothing behind for the next step, and the micro-batch gradients are added in the fixed pairwise
// order whatever their number.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <limits>

#include "dist/comm.h"
#include "train/data_parallel.h"

using namespace tv;
namespace fs = std::filesystem;

TEST(DataParallel, ANonFiniteMicroBatchIsDroppedAndNotAddedToTheNextStep) {
  ParamStore params;
  Param& w = params.add("w", {3});
  w.value.fill_(1.0);
  AdamW opt;
  opt.weight_decay = 0;
  int calls = 0;
  TrainTask task;
  task.micro_step = [&] {
    ++calls;
    const bool bad = calls == 4;  // the last micro-batch of step 2: its NaN is what the buffers hold
    for (int i = 0; i < 3; ++i) w.grad_for_backward()->data<float>()[i] += bad ? NAN : 0.5f;
    StepStats s;
    s.loss = bad ? std::numeric_limits<double>::quiet_NaN() : 1.0;
    return s;
  };
  task.validate = [] { return std::map<std::string, double>{{"val_loss", 1.0}}; };
  task.data_state = [] { return std::string(); };
  task.restore_data_state = [](const std::string&) {};
  TrainLoopConfig cfg;
  cfg.out_dir = (fs::temp_directory_path() / ("tinyvlm_dp_nonfinite_" + std::to_string(getpid()))).string();
  fs::remove_all(cfg.out_dir);
  cfg.total_steps = 3;
  cfg.warmup_steps = 0;
  cfg.grad_accum = 2;
  cfg.val_every = 0;
  cfg.quiet = true;
  TrainResult r = run_training(params, opt, cfg, task);
  EXPECT_EQ(r.skipped_batches, 1);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(std::isfinite(w.value.data<float>()[i])) << "the NaN gradient leaked";
  // Every applied step saw the mean gradient 0.5 (not 0.5 + NaN, nor 1.0 from a stale buffer).
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(std::isfinite(w.grad_storage.data<float>()[i]));
  fs::remove_all(cfg.out_dir);
}

TEST(DataParallel, PairwiseOrderIsABinaryCountersCarries) {
  // The order of tree_reduce for 1..7 items, as (dst, src) merges.
  auto merges = [](int64_t n) {
    std::vector<std::pair<int64_t, int64_t>> m;
    const int64_t total = dist::tree_reduce(n, [&](int64_t d, int64_t s) { m.push_back({d, s}); });
    EXPECT_EQ(total, 0);
    return m;
  };
  using M = std::vector<std::pair<int64_t, int64_t>>;
  EXPECT_EQ(merges(1), M{});
  EXPECT_EQ(merges(2), (M{{0, 1}}));
  EXPECT_EQ(merges(4), (M{{0, 1}, {2, 3}, {0, 2}}));
  EXPECT_EQ(merges(3), (M{{0, 1}, {0, 2}}));
  EXPECT_EQ(merges(8), (M{{0, 1}, {2, 3}, {0, 2}, {4, 5}, {6, 7}, {4, 6}, {0, 4}}));
}
