// Deterministic column reductions over many rows (norm weight/bias gradients, bias gradients):
// fixed-size row blocks are summed in parallel, then the block partials are added in block order,
// so the result is the same for every thread count.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/cpu/grain.h"

namespace tv::cpu {

constexpr int64_t kColumnSumRows = 64;

// out[d] += sum over rows n of what add_row(n, acc) adds to acc[0..D).
template <typename T, typename AddRow>
void column_sums(T* out, int64_t N, int64_t D, AddRow add_row) {
  const int64_t blocks = (N + kColumnSumRows - 1) / kColumnSumRows;
  if (blocks == 0 || D == 0) return;
  std::vector<T> part(size_t(blocks * D), T(0));
#pragma omp parallel for if (N * D >= kParallelGrain) schedule(static)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    T* acc = part.data() + blk * D;
    const int64_t end = std::min(N, (blk + 1) * kColumnSumRows);
    for (int64_t n = blk * kColumnSumRows; n < end; ++n) add_row(n, acc);
  }
  for (int64_t blk = 1; blk < blocks; ++blk) {
    const T* src = part.data() + blk * D;
    for (int64_t d = 0; d < D; ++d) part[d] += src[d];
  }
  for (int64_t d = 0; d < D; ++d) out[d] += part[d];
}

}  // namespace tv::cpu
