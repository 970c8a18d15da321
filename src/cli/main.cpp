// tinyvlm: train and run a LLaMA-4-style tiny vision-language model.
#include <CLI/CLI.hpp>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>

#include "dist/comm.h"
#include "cli/commands.h"
#include "core/error.h"
#include "train/trainer.h"

// How OpenMP threads wait between parallel regions. Sleeping at once (passive) costs a futex wake-up per
// region, measured at about 15% of a training step (several hundred regions per step); spinning without
// bound (the runtime's default) steals the cores its peers need whenever anything else runs (measured:
// 3x slower training on a busy 2-core box). A short spin, then sleep, keeps most of the first and avoids
// the second. The runtime reads the setting once, at load time, so unless the user chose one we restart
// ourselves with it.
static void prefer_short_openmp_spins(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT")) return;
  setenv("GOMP_SPINCOUNT", "1000", 1);
  execv("/proc/self/exe", argv);  // returns only on failure; then carry on with the default policy
}

int main(int argc, char** argv) {
  prefer_short_openmp_spins(argv);
  CLI::App app{"tinyvlm: train and run a LLaMA-4-style tiny vision-language model, from scratch, in C++"};
  app.set_version_flag("--version", "tinyvlm 0.1.0");
  app.require_subcommand(1);
  app.fallthrough(false);

  tv::cli::add_demo_command(app);
  tv::cli::add_report_command(app);
  tv::cli::add_pretrain_command(app);
  tv::cli::add_generate_command(app);
  tv::cli::add_perplexity_command(app);
  tv::cli::add_bench_command(app);
  tv::cli::add_tokenizer_commands(app);
  tv::cli::add_align_command(app);
  tv::cli::add_encode_image_command(app);
  tv::cli::add_inspect_command(app);
  tv::cli::add_convert_command(app);
  tv::cli::add_ask_command(app);
  tv::cli::add_chat_command(app);
  tv::cli::add_instruct_command(app);
  tv::cli::add_eval_command(app);
  tv::cli::add_serve_command(app);
  tv::cli::add_dpo_command(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const tv::Interrupted& e) {
    tv::dist::finalize();  // every rank of a data-parallel run stopped at the same step
    return 128 + e.signal;  // 130 for SIGINT, 143 for SIGTERM; the loop has said where `last` is
  } catch (const tv::Error& e) {
    if (tv::dist::distributed()) tv::dist::abort_job(e.what(), 1);  // the other ranks must not wait for this one
    std::fprintf(stderr, "tinyvlm: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    if (tv::dist::distributed()) tv::dist::abort_job(e.what(), 1);
    std::fprintf(stderr, "tinyvlm: error: %s\n", e.what());
    return 1;
  }
  tv::dist::finalize();
  return 0;
}
