#include <algorithm>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/grain.h"

namespace tv::cpu {

template <typename T>
void gather_rows(T* y, const T* x, const int32_t* rows, int64_t n_rows, int64_t D) {
#pragma omp parallel for if (n_rows * D >= kParallelGrain) schedule(static)
  for (int64_t i = 0; i < n_rows; ++i) std::copy(x + int64_t(rows[i]) * D, x + (int64_t(rows[i]) + 1) * D, y + i * D);
}

// Sources are bucketed by destination with a stable counting sort; each destination row then adds its
// sources in increasing source order on one thread: no atomics, and the same bits for any thread count.
template <typename T>
void scatter_add_rows(T* y, const T* x, const int32_t* rows, const T* weights, int64_t n_rows, int64_t n_out,
                      int64_t D) {
  std::vector<int64_t> start(static_cast<size_t>(n_out + 1), 0);
  for (int64_t i = 0; i < n_rows; ++i) ++start[size_t(rows[i]) + 1];
  for (int64_t r = 0; r < n_out; ++r) start[r + 1] += start[r];
  std::vector<int64_t> order(static_cast<size_t>(n_rows)), fill(start.begin(), start.end() - 1);
  for (int64_t i = 0; i < n_rows; ++i) order[size_t(fill[size_t(rows[i])]++)] = i;
  std::vector<int32_t> dests;
  for (int64_t r = 0; r < n_out; ++r)
    if (start[r + 1] > start[r]) dests.push_back(int32_t(r));
  const int64_t n_dests = int64_t(dests.size());
#pragma omp parallel for if (n_rows * D >= kParallelGrain) schedule(dynamic, 4)
  for (int64_t k = 0; k < n_dests; ++k) {
    const int64_t r = dests[k];
    T* yr = y + r * D;
    for (int64_t p = start[r]; p < start[r + 1]; ++p) {
      const int64_t i = order[p];
      const T* xr = x + i * D;
      if (weights) {
        const T w = weights[i];
        for (int64_t d = 0; d < D; ++d) yr[d] += w * xr[d];
      } else {
        for (int64_t d = 0; d < D; ++d) yr[d] += xr[d];
      }
    }
  }
}

#define TV_INSTANTIATE(T)                                                       \
  template void gather_rows<T>(T*, const T*, const int32_t*, int64_t, int64_t); \
  template void scatter_add_rows<T>(T*, const T*, const int32_t*, const T*, int64_t, int64_t, int64_t);
TV_INSTANTIATE(float)
TV_INSTANTIATE(double)
#undef TV_INSTANTIATE

}  // namespace tv::cpu
