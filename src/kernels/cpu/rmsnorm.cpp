#include <cmath>

#include "kernels/cpu/column_sums.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/grain.h"

namespace tv::cpu {

template <typename T>
void rmsnorm_fwd(T* y, T* rstd, const T* x, const T* gamma, int64_t N, int64_t D, double eps) {
#pragma omp parallel for if (N * D >= kParallelGrain) schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const T* xr = x + n * D;
    T* yr = y + n * D;
    T ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int64_t d = 0; d < D; ++d) ss += xr[d] * xr[d];
    const T r = T(1) / std::sqrt(ss / T(D) + T(eps));
    rstd[n] = r;
    for (int64_t d = 0; d < D; ++d) yr[d] = xr[d] * r * gamma[d];
  }
}

// y = x r g with r = (mean(x^2) + eps)^-1/2:
//   dx = r g dy - x r^3 / D * sum(g dy x),   dgamma = sum over rows of dy x r.
template <typename T>
void rmsnorm_bwd(T* dx, T* dgamma, const T* dy, const T* x, const T* gamma, const T* rstd, int64_t N, int64_t D,
                 bool dx_overwrite) {
  if (dx) {
#pragma omp parallel for if (N * D >= kParallelGrain) schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      const T* xr = x + n * D;
      const T* gr = dy + n * D;
      T* dxr = dx + n * D;
      const T r = rstd[n];
      T dot = 0;
#pragma omp simd reduction(+ : dot)
      for (int64_t d = 0; d < D; ++d) dot += gamma[d] * gr[d] * xr[d];
      const T c = dot * r * r * r / T(D);
      if (dx_overwrite)
        for (int64_t d = 0; d < D; ++d) dxr[d] = r * gamma[d] * gr[d] - c * xr[d];
      else
        for (int64_t d = 0; d < D; ++d) dxr[d] += r * gamma[d] * gr[d] - c * xr[d];
    }
  }
  if (dgamma) {
    column_sums(dgamma, N, D, [&](int64_t n, T* acc) {
      const T* xr = x + n * D;
      const T* gr = dy + n * D;
      const T r = rstd[n];
      for (int64_t d = 0; d < D; ++d) acc[d] += gr[d] * xr[d] * r;
    });
  }
}

#define TV_INSTANTIATE(T)                                                             \
  template void rmsnorm_fwd<T>(T*, T*, const T*, const T*, int64_t, int64_t, double); \
  template void rmsnorm_bwd<T>(T*, T*, const T*, const T*, const T*, const T*, int64_t, int64_t, bool);
TV_INSTANTIATE(float)
TV_INSTANTIATE(double)
#undef TV_INSTANTIATE

}  // namespace tv::cpu
