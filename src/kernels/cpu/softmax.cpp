#include <algorithm>
#include <cmath>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/grain.h"
#include "kernels/cpu/vec_exp.h"

namespace tv::cpu {

template <typename T>
void softmax_fwd(T* y, const T* x, int64_t N, int64_t D) {
#pragma omp parallel for if (N * D >= kParallelGrain) schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const T* xr = x + n * D;
    T* yr = y + n * D;
    T mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int64_t d = 0; d < D; ++d) mx = std::max(mx, xr[d]);
    T s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t d = 0; d < D; ++d) {
      yr[d] = vexp(xr[d] - mx);
      s += yr[d];
    }
    const T inv = T(1) / s;
    for (int64_t d = 0; d < D; ++d) yr[d] *= inv;
  }
}

// dx = y (dy - sum(dy y)).
template <typename T>
void softmax_bwd(T* dx, const T* dy, const T* y, int64_t N, int64_t D) {
#pragma omp parallel for if (N * D >= kParallelGrain) schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const T* gr = dy + n * D;
    const T* yr = y + n * D;
    T* dxr = dx + n * D;
    T dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int64_t d = 0; d < D; ++d) dot += gr[d] * yr[d];
    for (int64_t d = 0; d < D; ++d) dxr[d] += yr[d] * (gr[d] - dot);
  }
}

#define TV_INSTANTIATE(T)                                       \
  template void softmax_fwd<T>(T*, const T*, int64_t, int64_t); \
  template void softmax_bwd<T>(T*, const T*, const T*, int64_t, int64_t);
TV_INSTANTIATE(float)
TV_INSTANTIATE(double)
#undef TV_INSTANTIATE

}  // namespace tv::cpu
