#include <CLI/CLI.hpp>

#include "bench/bench.h"
#include "cli/commands.h"

namespace tv::cli {

void add_bench_command(CLI::App& app) {
  CLI::App* bench = app.add_subcommand("bench", "Measure throughput (kernels, tokenizer, training) on this machine");
  bench->require_subcommand(1);
  tv::bench::add_bench_ops(*bench);
  tv::bench::add_bench_train(*bench);
  tv::bench::add_bench_tokenizer(*bench);
  tv::bench::add_bench_image(*bench);
  tv::bench::add_bench_vit(*bench);
  tv::bench::add_bench_parquet(*bench);
  tv::bench::add_bench_instruct(*bench);
  tv::bench::add_bench_decode(*bench);
  tv::bench::add_bench_generate(*bench);
  tv::bench::add_bench_dpo(*bench);
}

}  // namespace tv::cli
