#include <CLI/CLI.hpp>

#include "bench/bench.h"

namespace tv::bench {

void add_bench_ops(CLI::App& bench) {
  CLI::App* cmd = bench.add_subcommand("ops", "GFLOP/s of the matmul and attention kernels beside the BLAS sgemm peak");
  cmd->callback([] {});
}

}  // namespace tv::bench
