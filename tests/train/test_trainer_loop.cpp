// The shared training loop: non-finite batches are skipped and reported, never applied, and do not
// advance the step or the schedule; gradient accumulation averages micro-batches.
#include <unistd.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <limits>

#include "train/trainer.h"

using namespace tv;
namespace fs = std::filesystem;

TEST(TrainerLoop, NonFiniteBatchesAreSkippedNotApplied) {
  ParamStore params;
  Param& w = params.add("w", {3});
  w.value.fill_(1.0);
  AdamW opt;
  opt.weight_decay = 0;
  int calls = 0, applied_calls = 0;
  TrainTask task;
  task.micro_step = [&] {
    ++calls;
    StepStats s;
    bool bad = calls % 3 == 0;
    s.loss = bad ? std::numeric_limits<double>::quiet_NaN() : 1.0;
    if (!bad) ++applied_calls;
    for (int i = 0; i < 3; ++i) w.grad_for_backward()->data<float>()[i] += bad ? NAN : 0.5f;
    return s;
  };
  task.validate = [] { return std::map<std::string, double>{{"val_loss", 1.0}}; };
  task.data_state = [] { return std::string(); };
  task.restore_data_state = [](const std::string&) {};
  TrainLoopConfig cfg;
  cfg.out_dir = (fs::temp_directory_path() / ("tinyvlm_trainer_loop_" + std::to_string(getpid()))).string();
  fs::remove_all(cfg.out_dir);
  cfg.total_steps = 6;
  cfg.warmup_steps = 0;
  cfg.lr = 0.1;
  cfg.val_every = 0;
  cfg.quiet = true;
  TrainResult r = run_training(params, opt, cfg, task);
  EXPECT_EQ(r.steps_done, 6);
  EXPECT_EQ(r.skipped_batches, 2);  // calls 3 and 6 were NaN
  EXPECT_EQ(applied_calls, 6);
  EXPECT_EQ(opt.step, 6);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(std::isfinite(w.value.data<float>()[i]));
  EXPECT_LT(w.value.data<float>()[0], 1.0f);  // positive gradients moved it down
  fs::remove_all(cfg.out_dir);
}

TEST(TrainerLoop, GradientAccumulationAveragesMicroBatches) {
  // Two micro-batches with gradients 1 and 3 must give the same update as one batch with gradient 2.
  auto run = [](int accum) {
    ParamStore params;
    Param& w = params.add("w", {1});
    AdamW opt;
    opt.weight_decay = 0;
    int call = 0;
    TrainTask task;
    task.micro_step = [&, accum] {
      float g = accum == 1 ? 2.0f : (call++ % 2 == 0 ? 1.0f : 3.0f);
      w.grad_for_backward()->data<float>()[0] += g;
      return StepStats{1.0, {}, 1};
    };
    task.validate = [] { return std::map<std::string, double>{{"val_loss", 1.0}}; };
    task.data_state = [] { return std::string(); };
    task.restore_data_state = [](const std::string&) {};
    TrainLoopConfig cfg;
    cfg.out_dir = (fs::temp_directory_path() / ("tinyvlm_accum_" + std::to_string(getpid()) + "_" + std::to_string(accum))).string();
    fs::remove_all(cfg.out_dir);
    cfg.total_steps = 3;
    cfg.warmup_steps = 0;
    cfg.grad_accum = accum;
    cfg.max_grad_norm = 100;
    cfg.val_every = 0;
    cfg.quiet = true;
    run_training(params, opt, cfg, task);
    fs::remove_all(cfg.out_dir);
    return w.value.data<float>()[0];
  };
  EXPECT_EQ(run(1), run(2));
}
