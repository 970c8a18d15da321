#include <cmath>

#include "kernels/cpu/column_sums.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/grain.h"

namespace tv::cpu {

// Two passes per row (mean, then the biased variance around it) as PyTorch's LayerNorm.
template <typename T>
void layernorm_fwd(T* y, T* mean, T* rstd, const T* x, const T* w, const T* b, int64_t N, int64_t D, double eps) {
#pragma omp parallel for if (N * D >= kParallelGrain) schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const T* xr = x + n * D;
    T* yr = y + n * D;
    T s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t d = 0; d < D; ++d) s += xr[d];
    const T mu = s / T(D);
    T ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int64_t d = 0; d < D; ++d) ss += (xr[d] - mu) * (xr[d] - mu);
    const T r = T(1) / std::sqrt(ss / T(D) + T(eps));
    mean[n] = mu;
    rstd[n] = r;
    for (int64_t d = 0; d < D; ++d) yr[d] = (xr[d] - mu) * r * w[d] + b[d];
  }
}

// With xhat = (x - mean) r and g = dy w: dx = r (g - mean(g) - xhat mean(g xhat)),
// dw = sum over rows of dy xhat, db = sum over rows of dy.
template <typename T>
void layernorm_bwd(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, const T* mean, const T* rstd, int64_t N,
                   int64_t D) {
  if (dx) {
#pragma omp parallel for if (N * D >= kParallelGrain) schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      const T* xr = x + n * D;
      const T* gr = dy + n * D;
      T* dxr = dx + n * D;
      const T mu = mean[n], r = rstd[n];
      T sg = 0, sgx = 0;
#pragma omp simd reduction(+ : sg, sgx)
      for (int64_t d = 0; d < D; ++d) {
        const T g = gr[d] * w[d];
        sg += g;
        sgx += g * (xr[d] - mu) * r;
      }
      const T mg = sg / T(D), mgx = sgx / T(D);
      for (int64_t d = 0; d < D; ++d) dxr[d] += r * (gr[d] * w[d] - mg - (xr[d] - mu) * r * mgx);
    }
  }
  if (dw) {
    column_sums(dw, N, D, [&](int64_t n, T* acc) {
      const T* xr = x + n * D;
      const T* gr = dy + n * D;
      const T mu = mean[n], r = rstd[n];
      for (int64_t d = 0; d < D; ++d) acc[d] += gr[d] * ((xr[d] - mu) * r);
    });
  }
  if (db) {
    column_sums(db, N, D, [&](int64_t n, T* acc) {
      const T* gr = dy + n * D;
      for (int64_t d = 0; d < D; ++d) acc[d] += gr[d];
    });
  }
}

#define TV_INSTANTIATE(T)                                                                             \
  template void layernorm_fwd<T>(T*, T*, T*, const T*, const T*, const T*, int64_t, int64_t, double); \
  template void layernorm_bwd<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*, int64_t, int64_t);
TV_INSTANTIATE(float)
TV_INSTANTIATE(double)
#undef TV_INSTANTIATE

}  // namespace tv::cpu
