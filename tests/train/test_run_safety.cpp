// A run never loses work: an existing run is refused unless resumed or overwritten (moved aside, never
// deleted), one run per folder (lock file, stale locks taken over), SIGINT/SIGTERM checkpoint and stop,
// time-based checkpoints, stale temporary files removed, metrics flushed per line, model and state of a
// checkpoint always from one step (also under kill -9), non-finite gradient norms skipped, a run that
// keeps skipping stops, and out-of-range optimizer settings refused.
#include <signal.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <thread>

#include "core/error.h"
#include "io/run_dir.h"
#include "io/safetensors.h"
#include "train/trainer.h"

using namespace tv;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("tinyvlm_safety_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(d);
  return d;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// A tiny model and task: one parameter vector, gradient = w - 0.5 (plus what `grad` adds), loss = |w|^2.
struct TinyRun {
  ParamStore params;
  AdamW opt;
  TrainTask task;
  TrainLoopConfig cfg;
  int64_t calls = 0, data_pos = 0;
  std::function<void(int64_t call)> on_call;  // runs at the start of every micro-step
  std::function<float(int64_t call)> grad_extra = [](int64_t) { return 0.0f; };
  std::function<double(int64_t call)> loss_of = [](int64_t) { return 1.0; };

  explicit TinyRun(const fs::path& out, int64_t n = 8) {
    Param& w = params.add("w", {n});
    w.value.fill_(1.0);
    opt.weight_decay = 0;
    task.micro_step = [this, n] {
      ++calls;
      ++data_pos;
      if (on_call) on_call(calls);
      Param& p = *params.find("w");
      float* g = p.grad_for_backward()->data<float>();
      const float* v = p.value.data<float>();
      for (int64_t i = 0; i < n; ++i) g[i] += v[i] - 0.5f + grad_extra(calls);
      StepStats s;
      s.loss = loss_of(calls);
      s.tokens = 1;
      return s;
    };
    task.validate = [this] {
      return std::map<std::string, double>{{"val_loss", std::fabs(params.find("w")->value.data<float>()[0] - 0.5)}};
    };
    task.data_state = [this] { return std::to_string(data_pos); };
    task.restore_data_state = [this](const std::string& s) { data_pos = std::stoll(s); };
    cfg.out_dir = out.string();
    cfg.total_steps = 6;
    cfg.warmup_steps = 0;
    cfg.lr = 0.01;
    cfg.val_every = 0;
    cfg.quiet = true;
  }
  TrainResult run() { return run_training(params, opt, cfg, task); }
};

int64_t step_of(const std::string& path) { return std::stoll(SafetensorsFile(path).metadata().at("step")); }

}  // namespace

TEST(RunSafety, AFolderHoldingARunIsRefusedUnlessResumedOrOverwritten) {
  fs::path d = fresh_dir("refuse");
  {
    TinyRun r(d);
    r.cfg.val_every = 2;
    r.run();
  }
  ASSERT_TRUE(fs::exists(d / "best.safetensors"));
  const int64_t best_step = step_of((d / "best.safetensors").string());
  const auto metrics_size = fs::file_size(d / "metrics.jsonl");
  {
    TinyRun r(d);
    std::string e = error_of([&] { r.run(); });
    EXPECT_NE(e.find("already holds a run"), std::string::npos) << e;
    EXPECT_NE(e.find("--resume"), std::string::npos) << e;
    EXPECT_NE(e.find("--overwrite"), std::string::npos) << e;
    EXPECT_EQ(r.calls, 0);  // refused before any work
  }
  // Nothing was touched.
  EXPECT_EQ(step_of((d / "best.safetensors").string()), best_step);
  EXPECT_EQ(fs::file_size(d / "metrics.jsonl"), metrics_size);
  {
    TinyRun r(d);
    r.cfg.overwrite = true;
    r.cfg.total_steps = 3;
    r.run();
  }
  // The old run was moved aside, intact; the new one starts afresh.
  fs::path aside;
  for (const auto& e : fs::directory_iterator(d))
    if (e.path().filename().string().rfind("previous-", 0) == 0) aside = e.path();
  ASSERT_FALSE(aside.empty());
  EXPECT_EQ(step_of((aside / "best.safetensors").string()), best_step);
  EXPECT_EQ(fs::file_size(aside / "metrics.jsonl"), metrics_size);
  EXPECT_EQ(step_of((d / "last.safetensors").string()), 3);
  fs::remove_all(d);
}

TEST(RunSafety, ASecondRunOnTheSameFolderIsKeptOut) {
  fs::path d = fresh_dir("lock");
  std::string second_error;
  TinyRun first(d);
  first.cfg.total_steps = 3;
  first.on_call = [&](int64_t call) {
    if (call != 2) return;
    TinyRun second(d);
    second.cfg.overwrite = true;  // even --overwrite must not take a folder a live run holds
    second_error = error_of([&] { second.run(); });
  };
  first.run();
  EXPECT_NE(second_error.find("in use by another run"), std::string::npos) << second_error;
  EXPECT_NE(second_error.find(std::to_string(getpid())), std::string::npos) << second_error;
  EXPECT_EQ(step_of((d / "last.safetensors").string()), 3);
  fs::remove_all(d);
}

TEST(RunSafety, AStaleLockOfADeadProcessIsTakenOver) {
  fs::path d = fresh_dir("stale");
  fs::create_directories(d);
  pid_t child = fork();
  if (child == 0) _exit(0);
  waitpid(child, nullptr, 0);  // a pid that is no longer running
  std::ofstream(d / "run.lock") << child << "\n";
  TinyRun r(d);
  r.cfg.quiet = false;
  testing::internal::CaptureStderr();
  r.run();
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("stale lock of pid " + std::to_string(child)), std::string::npos) << err;
  fs::remove_all(d);
}

TEST(RunSafety, StaleTemporaryFilesAreRemovedAtStart) {
  fs::path d = fresh_dir("tmp");
  {
    TinyRun r(d);
    r.cfg.stop_after = 2;
    r.run();
  }
  std::ofstream(d / "last.safetensors.tmp") << "half";
  fs::create_directories(d / "checkpoints" / "last-s9.tmp");
  fs::create_directories(d / "checkpoints" / "last-s8");  // superseded, no link names it
  TinyRun r(d);
  r.cfg.resume = true;
  r.run();
  EXPECT_FALSE(fs::exists(d / "last.safetensors.tmp"));
  EXPECT_FALSE(fs::exists(d / "checkpoints" / "last-s9.tmp"));
  EXPECT_FALSE(fs::exists(d / "checkpoints" / "last-s8"));
  EXPECT_EQ(step_of((d / "last.safetensors").string()), 6);
  fs::remove_all(d);
}

TEST(RunSafety, MetricsAreOnDiskAfterEveryLine) {
  fs::path d = fresh_dir("metrics");
  TinyRun r(d);
  std::vector<int64_t> lines_seen;
  r.on_call = [&](int64_t) {
    std::ifstream in(d / "metrics.jsonl");
    int64_t n = 0;
    std::string l;
    while (std::getline(in, l)) ++n;
    lines_seen.push_back(n);
  };
  r.run();
  ASSERT_EQ(lines_seen.size(), 6u);
  for (size_t i = 0; i < lines_seen.size(); ++i) EXPECT_EQ(lines_seen[i], int64_t(i)) << "before step " << i + 1;
  fs::remove_all(d);
}

TEST(RunSafety, ASignalFinishesTheStepWritesLastAndThrowsInterrupted) {
  for (int sig : {SIGINT, SIGTERM}) {
    fs::path d = fresh_dir("signal");
    TinyRun r(d);
    r.cfg.total_steps = 100;
    r.on_call = [&](int64_t call) {
      if (call == 4) ::raise(sig);
    };
    int caught = 0;
    std::string where;
    try {
      r.run();
    } catch (const Interrupted& e) {
      caught = e.signal;
      where = e.checkpoint;
    }
    EXPECT_EQ(caught, sig);
    EXPECT_EQ(where, (d / "last").string());
    EXPECT_EQ(r.calls, 4);  // the step in progress was finished, no further one started
    EXPECT_EQ(step_of((d / "last.safetensors").string()), 4);
    EXPECT_EQ(step_of((d / "last.state.safetensors").string()), 4);
    // The handler is gone again: the default disposition is back.
    struct sigaction sa {};
    sigaction(sig, nullptr, &sa);
    EXPECT_EQ(sa.sa_handler, SIG_DFL);
    TinyRun again(d);
    again.cfg.total_steps = 100;
    again.cfg.resume = true;
    again.cfg.stop_after = 5;
    again.run();
    EXPECT_EQ(again.data_pos, 5);
    fs::remove_all(d);
  }
}

TEST(RunSafety, ATimeBasedCheckpointIsWrittenWithoutValidation) {
  for (double minutes : {0.0, 1e-9}) {
    fs::path d = fresh_dir("timed");
    TinyRun r(d);
    r.cfg.total_steps = 100;
    r.cfg.checkpoint_minutes = minutes;
    r.on_call = [](int64_t call) {
      if (call == 4) throw std::runtime_error("crash");
    };
    EXPECT_THROW(r.run(), std::runtime_error);
    if (minutes > 0)
      EXPECT_EQ(step_of((d / "last.safetensors").string()), 3);
    else
      EXPECT_FALSE(fs::exists(d / "last.safetensors"));
    fs::remove_all(d);
  }
}

TEST(RunSafety, ANonFiniteGradientNormIsSkippedLikeANonFiniteLoss) {
  fs::path d = fresh_dir("gnorm");
  TinyRun r(d);
  r.grad_extra = [](int64_t call) { return call == 2 ? std::numeric_limits<float>::quiet_NaN() : 0.0f; };
  TrainResult res = r.run();  // the loss stays finite: only the gradient norm shows the problem
  EXPECT_EQ(res.skipped_batches, 1);
  EXPECT_EQ(res.steps_done, 6);
  for (int i = 0; i < 8; ++i) EXPECT_TRUE(std::isfinite(r.params.find("w")->value.data<float>()[i]));
  fs::remove_all(d);
}

TEST(RunSafety, ARunThatKeepsSkippingStopsWithTheLastGoodCheckpoint) {
  fs::path d = fresh_dir("skips");
  TinyRun r(d);
  r.cfg.total_steps = 1000;
  r.cfg.max_skips = 5;
  r.loss_of = [](int64_t call) { return call > 3 ? std::numeric_limits<double>::infinity() : 1.0; };
  std::string e = error_of([&] { r.run(); });
  EXPECT_NE(e.find("5 batches in a row"), std::string::npos) << e;
  EXPECT_NE(e.find((d / "last").string()), std::string::npos) << e;
  EXPECT_EQ(r.calls, 3 + 5);
  EXPECT_EQ(step_of((d / "last.safetensors").string()), 3);
  SafetensorsFile last((d / "last.safetensors").string());
  EXPECT_TRUE(std::isfinite(last.get("w").data<float>()[0]));
  fs::remove_all(d);
}

TEST(RunSafety, OptimizerSettingsMustBeFiniteAndInRange) {
  fs::path d = fresh_dir("opt");
  auto refused = [&](const std::function<void(TinyRun&)>& set, const std::string& what) {
    TinyRun r(d);
    set(r);
    std::string e = error_of([&] { r.run(); });
    EXPECT_NE(e.find(what), std::string::npos) << e;
    EXPECT_EQ(r.calls, 0);
  };
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  refused([&](TinyRun& r) { r.cfg.lr = inf; }, "learning rate");
  refused([&](TinyRun& r) { r.cfg.lr = nan; }, "learning rate");
  refused([&](TinyRun& r) { r.cfg.lr = 1e6; }, "learning rate");
  refused([&](TinyRun& r) { r.cfg.lr = 0; }, "learning rate");
  refused([&](TinyRun& r) { r.opt.beta1 = 1.0; }, "beta1");
  refused([&](TinyRun& r) { r.opt.beta2 = nan; }, "beta2");
  refused([&](TinyRun& r) { r.opt.eps = 0; }, "eps");
  refused([&](TinyRun& r) { r.opt.weight_decay = -1; }, "weight decay");
  refused([&](TinyRun& r) { r.cfg.max_grad_norm = inf; }, "max_grad_norm");
  EXPECT_FALSE(fs::exists(d / "metrics.jsonl"));
  fs::remove_all(d);
}

TEST(RunSafety, LoopConfigReadsMaxSkipsAndCheckpointMinutes) {
  Config c = Config::from_string("max_skips = 3\ncheckpoint_minutes = 2.5\n", "c.toml");
  RunOptions ro;
  ro.out = "x";
  TrainLoopConfig lc = loop_config("pretrain", ro, c, "");
  EXPECT_EQ(lc.max_skips, 3);
  EXPECT_DOUBLE_EQ(lc.checkpoint_minutes, 2.5);
  EXPECT_EQ(loop_config("pretrain", ro, Config::from_string(""), "").max_skips, 20);
  EXPECT_DOUBLE_EQ(loop_config("pretrain", ro, Config::from_string(""), "").checkpoint_minutes, 10);
  EXPECT_THROW(loop_config("pretrain", ro, Config::from_string("max_skips = 0"), ""), Error);
}

TEST(RunSafety, PathsARunRecordsAreRelativeToItsFolder) {
  EXPECT_EQ(path_for_run("/a/b/run/tok.json", "/a/b/run"), "tok.json");
  EXPECT_EQ(path_for_run("/a/b/data/tok.json", "/a/b/run"), "../data/tok.json");
}

// ---------------------------------------------------------------------------------------- kill -9
// A child process (this test binary, re-run on the test below) trains with a checkpoint every step and
// is killed with SIGKILL at a random moment; after every kill, best and last must each be a model and a
// state of one step with equal parameters, and the run must resume.

TEST(RunSafetyChild, DISABLED_TrainUntilKilled) {
  const char* out = std::getenv("TV_KILL9_OUT");
  if (!out) GTEST_SKIP();
  TinyRun r(out, 8000);  // big enough that a checkpoint takes a moment to write
  r.cfg.total_steps = 1000000;
  r.cfg.save_every = 1;
  r.cfg.val_every = 1;
  // Resume when there is a checkpoint, else start over (a kill can come before the first one).
  r.cfg.resume = fs::exists(fs::path(out) / "last.state.safetensors");
  r.cfg.overwrite = !r.cfg.resume;
  if (const char* stop = std::getenv("TV_KILL9_STOP")) r.cfg.stop_after = std::atoll(stop);
  r.run();
}

namespace {

pid_t spawn_child(const fs::path& out, const char* stop = nullptr) {
  pid_t pid = fork();
  if (pid == 0) {
    setenv("TV_KILL9_OUT", out.c_str(), 1);
    if (stop) setenv("TV_KILL9_STOP", stop, 1);
    int devnull = ::open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    dup2(devnull, 2);
    execl("/proc/self/exe", "tinyvlm_tests", "--gtest_filter=RunSafetyChild.DISABLED_TrainUntilKilled",
          "--gtest_also_run_disabled_tests", "--gtest_brief=1", (char*)nullptr);
    _exit(127);
  }
  return pid;
}

// Both files of a checkpoint from one step, with the same parameters; returns the step (-1: none yet).
int64_t check_pair(const fs::path& d, const std::string& name) {
  if (!fs::exists(d / name)) return -1;
  SafetensorsFile model((d / (name + ".safetensors")).string()), state((d / (name + ".state.safetensors")).string());
  int64_t step = std::stoll(model.metadata().at("step"));
  EXPECT_EQ(step, std::stoll(state.metadata().at("step"))) << name;
  Tensor a = model.get("w"), b = state.get("param.w");
  EXPECT_EQ(0, std::memcmp(a.data<float>(), b.data<float>(), size_t(a.numel()) * 4)) << name << " at step " << step;
  return step;
}

}  // namespace

TEST(RunSafety, Kill9AtRandomMomentsNeverPairsFilesOfTwoSteps) {
  fs::path d = fresh_dir("kill9");
  std::mt19937 rng(12345);
  std::uniform_int_distribution<int> wait_ms(30, 400);
  int64_t last_step = -1;
  const int trials = 24;
  int resumed = 0, killed_mid_commit = 0;
  for (int t = 0; t < trials; ++t) {
    pid_t child = spawn_child(d);
    std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms(rng)));
    ::kill(child, SIGKILL);
    int status = 0;
    waitpid(child, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == 0)) << "trial " << t;
    bool mid_commit = false;  // the kill came while a checkpoint was being written
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(d / "checkpoints", ec))
      if (e.path().extension() == ".tmp") mid_commit = true;
    killed_mid_commit += mid_commit;
    check_pair(d, "best");
    for (const auto& e : fs::directory_iterator(d, ec))  // and every step_N snapshot
      if (e.is_symlink() && e.path().filename().string().rfind("step_", 0) == 0 && e.path().extension().empty())
        check_pair(d, e.path().filename().string());
    int64_t step = check_pair(d, "last");
    if (step >= 0 && last_step >= 0) {
      EXPECT_GE(step, last_step) << "trial " << t;  // a resume never goes back
      ++resumed;
    }
    if (step >= 0) last_step = step;
  }
  ASSERT_GE(last_step, 0) << "no checkpoint was ever written";
  std::printf("kill -9: %d trials, %d resumed, %d killed while a checkpoint was being written, last step %lld\n", trials,
              resumed, killed_mid_commit, (long long)last_step);
  EXPECT_GE(resumed, trials / 2);
  // A final resume runs to its end.
  const std::string stop = std::to_string(last_step + 2);
  pid_t child = spawn_child(d, stop.c_str());
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(check_pair(d, "last"), last_step + 2);
  fs::remove_all(d);
}

TEST(RunSafety, TokenizeOutputIsSwappedInOnlyWhenComplete) {
  fs::path d = fresh_dir("swap");
  fs::create_directories(d / "out");
  std::ofstream(d / "out" / "shard_00000.bin") << "old";
  fs::create_directories(d / "new");
  std::ofstream(d / "new" / "shard_00000.bin") << "new";
  swap_in_folder((d / "new").string(), (d / "out").string());
  std::ifstream in(d / "out" / "shard_00000.bin");
  std::string s;
  in >> s;
  EXPECT_EQ(s, "new");
  EXPECT_FALSE(fs::exists(d / "new"));
  fs::remove_all(d);
}
