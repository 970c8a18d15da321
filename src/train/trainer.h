// The training loop every phase shares: gradient accumulation, batches with a non-finite loss or gradient
// norm skipped and reported (a run that keeps skipping stops), global-norm clipping, AdamW with the
// warmup + cosine schedule, periodic validation, `best` and `last` checkpoints (plus every N steps and
// every checkpoint_minutes), a progress line, a metrics JSONL file flushed every line, and bit-exact
// resume. The run folder is guarded (io/run_dir.h): an existing run is refused unless resumed or
// overwritten, one run per folder, and each checkpoint's model and state are committed together.
// SIGINT / SIGTERM finish the current step, write `last` and throw Interrupted (a second signal exits
// at once). A phase supplies only how to run one micro-batch and how to validate.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/precision.h"
#include "model/config.h"
#include "train/optimizer.h"

namespace tv {

struct StepStats {
  double loss = 0;                        // the optimised loss of this micro-batch
  std::map<std::string, double> metrics;  // shown and logged (e.g. ce, aux)
  int64_t tokens = 0;
};

struct TrainTask {
  // Forward + backward of the next micro-batch, accumulating into the parameter gradients.
  std::function<StepStats()> micro_step;
  // Steps the data past the next micro-batch without computing it (another rank of a data-parallel run
  // does); needed only on several ranks (train/data_parallel.h).
  std::function<void()> skip_micro;
  // Validation metrics on held-out data; must contain TrainLoopConfig::best_metric.
  std::function<std::map<std::string, double>()> validate;
  // The data position (and any sampling RNG) as a string, for resume.
  std::function<std::string()> data_state;
  std::function<void(const std::string&)> restore_data_state;
};

struct TrainLoopConfig {
  std::string phase = "pretrain";
  std::string out_dir;
  int64_t total_steps = 100;   // optimizer steps of the whole run (the schedule's length)
  int64_t stop_after = -1;     // stop (as if killed after a checkpoint) once this many steps are done
  int64_t warmup_steps = 10;
  double lr = 3e-4, max_grad_norm = 1.0;
  int64_t grad_accum = 1;
  int64_t log_every = 10, val_every = 100, save_every = 0;
  bool resume = false;
  bool overwrite = false;          // move a run already in out_dir aside instead of refusing
  int64_t max_skips = 20;          // consecutive skipped batches that stop the run
  double checkpoint_minutes = 10;  // write `last` at least this often (0: only at validation / the end)
  std::string config_source;       // the config file, for errors about its settings
  std::string best_metric = "val_loss";
  bool higher_is_better = false;
  std::map<std::string, std::string> metadata;  // stored in every checkpoint (config, tokenizer, phase)
  bool quiet = false;
  MatmulPrecision matmul_precision = MatmulPrecision::F32;  // for the whole run, validation included
  int zero = 0;  // 1: AdamW moments sharded across the ranks of a data-parallel run (ZeRO-1)
};

// Thrown by run_training after a SIGINT or SIGTERM, once `last` is written; the command exits with
// 128 + signal (130, 143).
struct Interrupted : std::exception {
  int signal = 0;
  std::string checkpoint;
  explicit Interrupted(int s, std::string where) : signal(s), checkpoint(std::move(where)) {}
  const char* what() const noexcept override { return "interrupted"; }
};

struct TrainResult {
  int64_t steps_done = 0, skipped_batches = 0;
  double first_val = 0, best_val = 0, last_val = 0;
  bool has_val = false;
};

TrainResult run_training(ParamStore& params, AdamW& opt, const TrainLoopConfig& cfg, TrainTask& task);

// What a run of any phase takes besides its model and data (the phases' options structs extend it).
struct RunOptions {
  std::string out;                      // the run directory
  std::vector<std::string> sets;        // "key=value" config overrides
  int64_t steps = -1, stop_after = -1;  // -1: from the config / never
  bool resume = false, quiet = false;
  bool overwrite = false;               // move a run already in `out` aside (never deleted)
  int threads = 0;                      // 0: all cores; -1: leave the current setting
};

// The loop settings every phase fixes the same way: its name, the run's output directory, stop-after,
// resume, overwrite and quiet, the config in the checkpoints' metadata, and the keys read from the phase's
// own config prefix ("" for phase 1, "vlm_" for phase 2): <prefix>grad_accum (1), <prefix>log_interval
// (10), <prefix>save_interval (0), and unprefixed (one setting for every phase) matmul_precision ("fp32" or
// "bf16"), max_skips (20), checkpoint_minutes (10) and zero (0 or 1). The phase sets its schedule (steps,
// warmup, lr, clipping, validation interval) itself.
TrainLoopConfig loop_config(const std::string& phase, const RunOptions& run, const Config& cfg,
                            const std::string& prefix);

// Checkpoint files in a run directory: <name>.safetensors holds the model (interchange names, metadata),
// <name>.state.safetensors everything a resume needs in one file: parameters ("param.*"), optimizer moments
// and counts, and the trainer state (step, data position, best metric). Both are links into the folder
// of one step (io/run_dir.h).
std::string checkpoint_path(const std::string& dir, const std::string& name);
void save_model(const std::string& path, const ParamStore& params, const std::map<std::string, std::string>& meta);

// A path a run records (in checkpoint metadata), made relative to the run folder ("../data/tok.json"), so
// that a run moved together with its inputs still finds them.
std::string path_for_run(const std::string& path, const std::string& run_dir);

}  // namespace tv
