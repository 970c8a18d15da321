// The command-line options every training phase shares, registered once for `pretrain`, `align` and
// the phases to come, into the RunOptions part of the phase's options struct.
#pragma once
#include <CLI/CLI.hpp>

#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>

#include "train/trainer.h"

namespace tv::cli {

// --threads N: 1..256, with a warning above the number of cores (more threads than cores only slow
// every one of them down). Leaves `threads` at 0 (all cores) when not given.
inline CLI::Option* add_threads_option(CLI::App* cmd, int& threads) {
  return cmd
      ->add_option_function<int>(
          "--threads",
          [&threads](int n) {
            long cores = sysconf(_SC_NPROCESSORS_ONLN);
            if (cores > 0 && n > cores)
              std::fprintf(stderr, "tinyvlm: warning: --threads %d is more than the %ld cores of this machine\n", n, cores);
            threads = n;
          },
          "Worker threads, 1 to 256 (default: all cores)")
      ->check(CLI::Range(1, 256));
}

inline void add_training_run_options(CLI::App* cmd, const std::shared_ptr<RunOptions>& a,
                                     const std::string& steps_help, const std::string& set_example) {
  cmd->add_option("--steps", a->steps, steps_help)->check(CLI::Range(int64_t(1), int64_t(1) << 40));
  cmd->add_flag("--resume", a->resume, "Continue from <out>/last exactly where it stopped");
  cmd->add_flag("--overwrite", a->overwrite,
                "Start over in an --out that holds a run: the old run is moved to <out>/previous-<time>/");
  cmd->add_option("--set", a->sets, "Override a config key, e.g. --set " + set_example + " (repeatable)");
  cmd->add_option("--stop-after", a->stop_after, "Stop after this many steps (checkpointed), as if interrupted")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 40));
  cmd->add_option_function<std::string>(
         "--matmul-precision", [a](const std::string& v) { a->sets.push_back("matmul_precision=" + v); },
         "fp32 (default) or bf16: bf16 GEMM operands, fp32 accumulation and weights (config key matmul_precision)")
      ->check(CLI::IsMember({"fp32", "bf16"}));
  add_threads_option(cmd, a->threads);
  cmd->add_option_function<int>(
         "--zero", [a](int v) { a->sets.push_back("zero=" + std::to_string(v)); },
         "Under mpirun: 1 shards the AdamW moments across the ranks (ZeRO-1), 0 (default) keeps them everywhere "
         "(config key zero)")
      ->check(CLI::Range(0, 1));
}

}  // namespace tv::cli
