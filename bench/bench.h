// `tinyvlm bench ...`: throughput figures printed side by side with a peak or a peer measured in the
// same run. Each area registers its own subcommand under the `bench` command.
#pragma once

namespace CLI {
class App;
}

namespace tv::bench {

void add_bench_ops(CLI::App& bench);  // GEMM/attention GFLOP/s vs the BLAS sgemm peak

}  // namespace tv::bench
