#include "train/trainer.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "dist/comm.h"
#include "io/atomic_file.h"
#include "io/run_dir.h"
#include "io/safetensors.h"
#include "report/html_report.h"
#include "train/data_parallel.h"

namespace tv {
namespace fs = std::filesystem;

std::string checkpoint_path(const std::string& dir, const std::string& name) {
  return (fs::path(dir) / (name + ".safetensors")).string();
}

void save_model(const std::string& path, const ParamStore& params, const std::map<std::string, std::string>& meta) {
  save_safetensors(path, params.named_values(), meta);
}

std::string path_for_run(const std::string& path, const std::string& run_dir) {
  std::error_code ec;
  fs::path abs = fs::weakly_canonical(fs::absolute(path), ec);
  fs::path run = fs::weakly_canonical(fs::absolute(run_dir), ec);
  fs::path rel = abs.lexically_relative(run);
  return ec || rel.empty() ? abs.string() : rel.string();
}

namespace {

std::string fmt_duration(double s) {
  char buf[32];
  if (s < 0 || !std::isfinite(s)) return "?";
  long t = long(s + 0.5);
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else if (t >= 60)
    std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%lds", t);
  return buf;
}

struct TrainerState {
  int64_t step = 0, skipped = 0;
  double best = 0, first_val = 0, last_val = 0;
  bool has_best = false, has_first = false;
  std::string data;
};

// SIGINT / SIGTERM while training: the first one is noted and acted on after the current step; a second
// one exits at once. The previous handlers come back when the loop ends.
volatile sig_atomic_t g_stop_signal = 0;

extern "C" void on_stop_signal(int sig) {
  if (g_stop_signal) _exit(128 + sig);
  g_stop_signal = sig;
  const char msg[] = "\nstopping after this step (checkpointing); interrupt again to exit at once\n";
  if (::write(2, msg, sizeof msg - 1) < 0) {
  }
}

struct StopSignals {
  struct sigaction old_int {}, old_term {};
  StopSignals() {
    g_stop_signal = 0;
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
  }
  ~StopSignals() {
    sigaction(SIGINT, &old_int, nullptr);
    sigaction(SIGTERM, &old_term, nullptr);
  }
};

// metrics.jsonl, one JSON object a line, flushed every line so that a kill loses none.
struct MetricsLog {
  std::FILE* f = nullptr;
  std::string path;
  explicit MetricsLog(const std::string& p) : path(p) {
    f = std::fopen(p.c_str(), "ab");
    if (!f) fail(p, ": cannot open for appending (", std::strerror(errno), ")");
  }
  ~MetricsLog() {
    if (f) std::fclose(f);
  }
  void write(const nlohmann::json& j) {
    std::string line = j.dump() + "\n";
    if (std::fwrite(line.data(), 1, line.size(), f) != line.size() || std::fflush(f) != 0)
      fail(path, ": write failed (", std::strerror(errno), ")");
  }
};

void save_checkpoint(RunDir& dir, const std::string& name, const ParamStore& params, const AdamW& opt,
                     const TrainLoopConfig& cfg, const TrainerState& st) {
  std::map<std::string, std::string> meta = cfg.metadata;
  meta["format"] = "tinyvlm";
  meta["phase"] = cfg.phase;
  meta["step"] = std::to_string(st.step);
  if (st.has_best) meta["best_" + cfg.best_metric] = std::to_string(st.best);
  // The state file alone resumes a run: parameters, moments and counters. Model and state go into one
  // folder whose link is switched in one rename, so a kill at any moment leaves an old or a new pair.
  std::vector<NamedTensor> state = opt.state_tensors();
  for (const NamedTensor& p : params.named_values()) state.push_back({"param." + p.name, p.tensor});
  nlohmann::json js = {{"step", st.step},         {"skipped", st.skipped},     {"best", st.best},
                       {"has_best", st.has_best}, {"has_first", st.has_first}, {"first_val", st.first_val},
                       {"last_val", st.last_val}, {"data", st.data},         {"adam_step", opt.step},
                       {"phase", cfg.phase}};
  dir.commit_checkpoint(name, st.step, [&](const std::string& model_path, const std::string& state_path) {
    save_safetensors(state_path, state, {{"trainer_state", js.dump()}, {"step", std::to_string(st.step)}});
    save_model(model_path, params, meta);
  });
}

// After a SIGINT / SIGTERM: `last` written, where it is said, and Interrupted thrown on every rank
// together (the command exits with 128 + signal).
template <class SaveLast>
[[noreturn]] void stop_on_signal(const TrainLoopConfig& cfg, const TrainerState& st, bool writer, SaveLast& save_last) {
  const int sig = g_stop_signal ? int(g_stop_signal) : SIGTERM;  // a rank told by rank 0 may not have seen it yet
  save_last();
  const std::string where = (fs::path(cfg.out_dir) / "last").string();
  if (writer)
    std::fprintf(stderr, "\n%s: %s at step %lld: saved %s (model and state); continue with --resume\n", cfg.phase.c_str(),
                 sig == SIGINT ? "interrupted (SIGINT)" : "terminated (SIGTERM)", (long long)st.step, where.c_str());
  dist::barrier();  // no rank leaves while rank 0 still writes
  throw Interrupted(sig, where);
}

// A batch with a non-finite loss or gradient norm: reported and logged; after max_skips of them in a row
// the weights cannot be trusted to recover, so the run stops with `last` holding its last good state.
// Every rank sees the same losses and reduced gradients, so all of them skip and stop together.
template <class SaveLast>
void skip_batch(const TrainLoopConfig& cfg, TrainerState& st, MetricsLog& metrics, const char* what, int64_t in_a_row,
                bool tty, bool writer, SaveLast& save_last) {
  ++st.skipped;
  if (writer)
    std::fprintf(stderr, "%s%s: non-finite %s at step %lld, batch skipped (%lld skipped so far, %lld in a row)\n",
                 tty ? "\r\033[K" : "", cfg.phase.c_str(), what, (long long)st.step, (long long)st.skipped,
                 (long long)in_a_row);
  metrics.write({{"step", st.step}, {"phase", cfg.phase}, {"event", "skipped_nonfinite_batch"}, {"cause", what}});
  if (in_a_row < cfg.max_skips) return;
  save_last();  // nothing non-finite was ever applied: these weights are the last good ones
  fail(cfg.phase, ": stopped: ", in_a_row, " batches in a row had a non-finite ", what, " at step ", st.step,
       " (max_skips = ", cfg.max_skips, "); the last good checkpoint is ", (fs::path(cfg.out_dir) / "last").string(),
       ". Try a lower learning rate or a smaller max_grad_norm");
}

// report.html beside metrics.jsonl (report/html_report.h), rebuilt at the start, at each validation and at
// the end; a failure to write it is said once a run and never stops training.
void refresh_report(const TrainLoopConfig& cfg, bool quiet, bool& warned) {
  try {
    report::write_run_report(cfg.out_dir);
  } catch (const std::exception& e) {
    if (!quiet && !warned) std::fprintf(stderr, "%s: report.html not written: %s\n", cfg.phase.c_str(), e.what());
    warned = true;
  }
}

// Data-parallel hooks (docs/distributed.md): rank 0 alone logs, validates and writes files; the others
// compute their share of each batch and take part in the reductions.
bool is_writer() { return dist::rank() == 0; }

// Returns the ZeRO-1 plan (empty unless cfg.zero on several ranks) and shards the optimizer by it.
ZeroPlan start_data_parallel(ParamStore& params, AdamW& opt, const TrainLoopConfig& cfg, const TrainTask& task) {
  check_data_parallel(task, cfg.grad_accum, cfg.phase);
  if (!dist::distributed()) return {};
  broadcast_params(params);  // identical starting points even if an initialiser differed between ranks
  if (!cfg.quiet && is_writer())
    std::fprintf(stderr, "%s: %d ranks, %lld micro-batch(es) of each step per rank%s\n", cfg.phase.c_str(),
                 dist::world_size(), (long long)(cfg.grad_accum / dist::world_size()),
                 cfg.zero ? ", AdamW moments sharded (ZeRO-1)" : "");
  if (!cfg.zero) return {};
  ZeroPlan plan = zero_plan(params);
  zero_shard(opt, params, plan);
  return plan;
}

// Every rank leaves together: no rank exits (and ends the job) while rank 0 is still writing the last
// checkpoint.
void finish_data_parallel() { dist::barrier(); }

}  // namespace

TrainLoopConfig loop_config(const std::string& phase, const RunOptions& run, const Config& cfg,
                            const std::string& prefix) {
  TrainLoopConfig lc;
  lc.phase = phase;
  lc.out_dir = run.out;
  lc.stop_after = run.stop_after;
  lc.resume = run.resume;
  lc.quiet = run.quiet;
  lc.overwrite = run.overwrite;
  lc.config_source = cfg.source();
  lc.metadata["config"] = cfg.to_toml();
  lc.grad_accum = cfg.get_int(prefix + "grad_accum", 1);
  lc.log_every = cfg.get_int(prefix + "log_interval", 10);
  lc.save_every = cfg.get_int(prefix + "save_interval", 0);
  if (lc.grad_accum < 1) fail(cfg.source(), ": ", prefix, "grad_accum must be at least 1, got ", lc.grad_accum);
  if (lc.log_every < 1) fail(cfg.source(), ": ", prefix, "log_interval must be at least 1, got ", lc.log_every);
  if (lc.save_every < 0) fail(cfg.source(), ": ", prefix, "save_interval must be >= 0 (0: best/last only)");
  lc.zero = int(cfg.get_int("zero", 0));
  if (lc.zero != 0 && lc.zero != 1) fail(cfg.source(), ": zero must be 0 or 1 (ZeRO-1), got ", lc.zero);
  lc.matmul_precision =
      parse_matmul_precision(cfg.get_string("matmul_precision", "fp32"), cfg.source() + ": matmul_precision =");
  lc.max_skips = cfg.get_int("max_skips", 20);
  lc.checkpoint_minutes = cfg.get_double("checkpoint_minutes", 10);
  if (lc.max_skips < 1) fail(cfg.source(), ": max_skips must be at least 1, got ", lc.max_skips);
  if (lc.checkpoint_minutes < 0) fail(cfg.source(), ": checkpoint_minutes must be >= 0 (0: off)");
  return lc;
}

TrainResult run_training(ParamStore& params, AdamW& opt, const TrainLoopConfig& cfg, TrainTask& task) {
  TV_CHECK(!cfg.out_dir.empty(), "run_training: no output directory");
  TV_CHECK(cfg.total_steps > 0, "the number of training steps must be positive, got ", cfg.total_steps);
  TV_CHECK(cfg.grad_accum >= 1, "grad_accum must be >= 1");
  TV_CHECK(cfg.max_skips >= 1, "max_skips must be >= 1");
  check_optimizer_settings(opt, cfg.lr, cfg.max_grad_norm, cfg.config_source.empty() ? cfg.phase : cfg.config_source);
  RunDirOptions rdo;
  rdo.resume = cfg.resume;
  rdo.overwrite = cfg.overwrite;
  rdo.quiet = cfg.quiet;
  rdo.what = cfg.phase;
  dist::init();
  const bool writer = is_writer();
  const bool quiet = cfg.quiet || !writer;
  // Rank 0 alone owns the run folder: the refusal of a finished run, the lock, the clean-up, the
  // checkpoints. The others wait for it, so that its refusal ends the job before any work.
  std::optional<RunDir> dir;
  if (writer) dir.emplace(cfg.out_dir, rdo);
  dist::barrier();
  TrainerState st;
  MatmulPrecisionScope precision(cfg.matmul_precision);
  if (!quiet && cfg.matmul_precision == MatmulPrecision::BF16)
    std::fprintf(stderr, "%s: bf16 matmuls (fp32 accumulation)%s\n", cfg.phase.c_str(),
                 ops::bf16_matmuls_native() ? "" : "; this CPU has no AVX512-BF16, so they are emulated and slower than fp32");

  if (cfg.resume) {
    std::string state_path = (fs::path(cfg.out_dir) / "last.state.safetensors").string();
    if (!fs::exists(state_path))
      fail("--resume: no checkpoint to resume from in ", cfg.out_dir, " (expected last.state.safetensors)");
    SafetensorsFile state_file(state_path);
    if (!state_file.metadata().count("trainer_state")) fail(state_path, ": not a tinyvlm trainer-state file");
    auto js = nlohmann::json::parse(state_file.metadata().at("trainer_state"));
    if (js.value("phase", cfg.phase) != cfg.phase)
      fail(state_path, ": this is a ", js.value("phase", std::string("?")), " run, not ", cfg.phase);
    params.load(state_file, "param.", false);
    opt.load_state(state_file, params);
    opt.step = js.at("adam_step").get<int64_t>();
    st.step = js.at("step").get<int64_t>();
    st.skipped = js.at("skipped").get<int64_t>();
    st.best = js.at("best").get<double>();
    st.has_best = js.at("has_best").get<bool>();
    st.first_val = js.at("first_val").get<double>();
    st.has_first = js.at("has_first").get<bool>();
    st.last_val = js.at("last_val").get<double>();
    st.data = js.at("data").get<std::string>();
    task.restore_data_state(st.data);
    if (!quiet) std::fprintf(stderr, "%s: resumed from %s at step %lld\n", cfg.phase.c_str(), state_path.c_str(), (long long)st.step);
  }

  using clock = std::chrono::steady_clock;
  const ZeroPlan zero = start_data_parallel(params, opt, cfg, task);
  const bool zero_on = !zero.owner.empty();
  const std::string metrics_path = writer ? (fs::path(cfg.out_dir) / "metrics.jsonl").string() : "/dev/null";
  if (writer && cfg.resume && fs::exists(metrics_path)) {
    // Drop what was logged after the checkpoint we resume from: those steps are about to be redone.
    std::ifstream in(metrics_path);
    std::string line, kept;
    while (std::getline(in, line)) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (!j.is_discarded() && j.value("step", int64_t(0)) <= st.step) kept += line + "\n";
    }
    write_file_atomic(metrics_path, kept);
  }
  MetricsLog metrics(metrics_path);
  StopSignals stop_signals;
  auto t_saved = clock::now();  // the last time `last` was written
  const bool tty = isatty(fileno(stderr));
  auto t_start = clock::now();
  int64_t tokens_since = 0, steps_since = 0;
  auto t_since = clock::now();
  int64_t start_step = st.step;
  int64_t report_step = -1;  // the step report.html was last written at
  bool report_warned = false;
  if (writer) refresh_report(cfg, quiet, report_warned);  // no page of an earlier run stays while this one runs

  auto run_validation = [&]() {
    if (!writer) return false;  // rank 0 validates alone: the parameters are the same everywhere
    auto vm = task.validate();
    TV_CHECK(vm.count(cfg.best_metric), "validation did not report ", cfg.best_metric);
    double v = vm.at(cfg.best_metric);
    if (!st.has_first) {
      st.first_val = v;
      st.has_first = true;
    }
    st.last_val = v;
    nlohmann::json j = {{"step", st.step}, {"phase", cfg.phase}, {"split", "val"}};
    for (auto& [k, x] : vm) j[k] = x;
    metrics.write(j);
    refresh_report(cfg, quiet, report_warned);
    report_step = st.step;
    bool improved = !st.has_best || (cfg.higher_is_better ? v > st.best : v < st.best);
    if (!quiet) {
      std::string line = cfg.phase + " validation at step " + std::to_string(st.step) + ":";
      for (auto& [k, x] : vm) {
        char buf[64];
        std::snprintf(buf, sizeof buf, " %s %.4f", k.c_str(), x);
        line += buf;
      }
      std::fprintf(stderr, "%s%s%s\n", tty ? "\r\033[K" : "", line.c_str(), improved ? " (best)" : "");
    }
    return improved;
  };

  if (st.step == 0 && cfg.val_every > 0) run_validation();  // the starting point, never saved as best

  int64_t skips_in_a_row = 0;
  // Writes this step's checkpoints `names` (metrics.jsonl is flushed every line, so it already covers
  // them); under ZeRO-1 every rank first takes part in gathering the moments, then rank 0 alone writes.
  auto save = [&](const std::vector<std::string>& names) {
    if (names.empty()) return;
    st.data = task.data_state();
    AdamW gathered;
    const AdamW& state = zero_on ? (gathered = zero_gather_state(opt, params, zero)) : opt;
    for (const std::string& n : names) {
      if (n == "last") t_saved = clock::now();
      if (writer) save_checkpoint(*dir, n, params, state, cfg, st);
    }
  };
  auto save_last = [&] { save({"last"}); };
  while (st.step < cfg.total_steps && (cfg.stop_after < 0 || st.step < cfg.stop_after)) {
    // A signal stops every rank at the same step: rank 0's word decides (mpirun passes it to all of them).
    bool stop = g_stop_signal != 0;
    if (dist::distributed()) stop = agree_with_rank0(stop);
    if (stop) stop_on_signal(cfg, st, writer, save_last);
    const dist::CommStats comm_before = dist::comm_stats();
    const auto t_step = clock::now();
    GlobalBatch batch = accumulate_global_batch(params, task, cfg.grad_accum);
    const StepStats& sum = batch.mean;
    double gnorm = 0;
    if (batch.finite) {
      if (cfg.grad_accum > 1)
        for (Tensor* g : params.grads()) ops::scale_(*g, 1.0 / double(cfg.grad_accum));
      // Clipping as torch.nn.utils.clip_grad_norm_, its coefficient applied inside AdamW. The gradients are
      // the reduced ones, so every rank gets the same norm and takes the same decision below.
      gnorm = ops::grad_norm(params.grads());
    }
    if (!batch.finite || !std::isfinite(gnorm)) {
      // Never apply a non-finite batch: drop its gradients, keep the step count and schedule where they are.
      skip_batch(cfg, st, metrics, batch.finite ? "gradient norm" : "loss", ++skips_in_a_row, tty, writer, save_last);
      continue;
    }
    skips_in_a_row = 0;
    double lr = lr_at(opt.step, cfg.warmup_steps, cfg.total_steps, cfg.lr);
    opt.apply(params, lr, ops::clip_coefficient(gnorm, cfg.max_grad_norm));
    if (zero_on) zero_share_params(params, zero);
    ++st.step;
    const double step_s = std::chrono::duration<double>(clock::now() - t_step).count();
    tokens_since += sum.tokens;
    ++steps_since;

    nlohmann::json j = {{"step", st.step}, {"phase", cfg.phase}, {"split", "train"}, {"loss", sum.loss},
                        {"lr", lr},        {"grad_norm", gnorm}, {"tok_per_s", step_s > 0 ? double(sum.tokens) / step_s : 0.0}};
    for (auto& [k, x] : sum.metrics) j[k] = x;
    if (dist::distributed()) {  // this rank's time in collectives (waiting for the others included) and bytes sent
      j["comm_s"] = dist::comm_stats().seconds - comm_before.seconds;
      j["comm_bytes"] = dist::comm_stats().bytes_sent - comm_before.bytes_sent;
    }
    metrics.write(j);

    bool last_step = st.step == cfg.total_steps || st.step == cfg.stop_after;
    if (!quiet && (st.step % cfg.log_every == 0 || last_step || st.step == start_step + 1)) {
      double dt = std::chrono::duration<double>(clock::now() - t_since).count();
      double elapsed = std::chrono::duration<double>(clock::now() - t_start).count();
      double per_step = elapsed / double(st.step - start_step);
      double eta = per_step * double(cfg.total_steps - st.step);
      std::string extra;
      for (auto& [k, x] : sum.metrics) {
        char buf[64];
        std::snprintf(buf, sizeof buf, " | %s %.4f", k.c_str(), x);
        extra += buf;
      }
      std::fprintf(stderr, "%s%s step %lld/%lld | loss %.4f%s | lr %.2e | %.0f tok/s | ETA %s%s", tty ? "\r\033[K" : "",
                   cfg.phase.c_str(), (long long)st.step, (long long)cfg.total_steps, sum.loss, extra.c_str(), lr,
                   dt > 0 ? double(tokens_since) / dt : 0.0, fmt_duration(eta).c_str(), tty ? "" : "\n");
      std::fflush(stderr);
      tokens_since = 0;
      t_since = clock::now();
    }

    bool validate_now = cfg.val_every > 0 && (st.step % cfg.val_every == 0 || last_step);
    bool improved = validate_now && run_validation();
    if (zero_on) improved = agree_with_rank0(improved);  // every rank takes part in gathering the state
    const bool periodic = cfg.save_every > 0 && st.step % cfg.save_every == 0;
    std::vector<std::string> names;
    if (improved) {
      st.best = st.last_val;
      st.has_best = true;
      names.push_back("best");
    }
    if (periodic) names.push_back("step_" + std::to_string(st.step));
    bool time_to_save = cfg.checkpoint_minutes > 0 &&
                        std::chrono::duration<double>(clock::now() - t_saved).count() >= 60.0 * cfg.checkpoint_minutes;
    if (zero_on) time_to_save = agree_with_rank0(time_to_save);  // the clocks of the ranks differ
    if (validate_now || last_step || periodic || time_to_save) names.push_back("last");
    save(names);
  }
  if (tty && !quiet) std::fprintf(stderr, "\n");
  if (writer && report_step != st.step) refresh_report(cfg, quiet, report_warned);
  finish_data_parallel();

  TrainResult r;
  r.steps_done = st.step;
  r.skipped_batches = st.skipped;
  r.first_val = st.first_val;
  r.best_val = st.best;
  r.last_val = st.last_val;
  r.has_val = cfg.val_every > 0;
  return r;
}

}  // namespace tv
