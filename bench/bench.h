// `tinyvlm bench ...`: throughput figures printed side by side with a peak or a peer measured in the
// same run. Each area registers its own subcommand under the `bench` command.
#pragma once
#include <cstdint>

#include "model/config.h"

namespace CLI {
class App;
}

namespace tv::bench {

void add_bench_ops(CLI::App& bench);    // GEMM/attention GFLOP/s vs the BLAS sgemm peak
void add_bench_train(CLI::App& bench);  // phase-1 training and generation throughput
void add_bench_tokenizer(CLI::App& bench);  // encode MB/s, 1 thread and all threads
void add_bench_image(CLI::App& bench);  // decode + preprocess images/s, 1 thread and N threads
void add_bench_vit(CLI::App& bench);    // vision tower forward images/s
void add_bench_parquet(CLI::App& bench);  // Parquet text column MB/s, image column decode images/s
void add_bench_instruct(CLI::App& bench);  // phase-3 training tokens/s, batch or max padding
void add_bench_decode(CLI::App& bench);    // batched decode step tokens/s at batch 1, 4, 8, 16
void add_bench_generate(CLI::App& bench);  // decode tokens/s per weight format vs the bandwidth limit
void add_bench_dpo(CLI::App& bench);  // phase-4 pairs/s and peak memory, live or precomputed reference

// The decoder the training benchmarks time (and their PyTorch peers build): d_model 256, 4 layers with
// every layer kind, 8 experts, vocabulary 8192, chunk 64.
ModelConfig bench_decoder_config(int64_t max_seq_len);

}  // namespace tv::bench
