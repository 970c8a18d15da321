// Elementwise activations, written as PyTorch's CPU kernels write them (silu = x / (1 + exp(-x)),
// exact gelu = x * 0.5 * (1 + erf(x / sqrt 2))). exp is vexp so the float loops vectorise.
#include <cmath>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/grain.h"
#include "kernels/cpu/vec_exp.h"

namespace tv::cpu {

namespace {
template <typename T>
inline T sigmoid(T x) {
  return T(1) / (T(1) + vexp(-x));
}
}  // namespace

template <typename T>
void silu_fwd(T* y, const T* x, int64_t n) {
#pragma omp parallel for simd if (parallel : n >= kParallelGrain) schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] / (T(1) + vexp(-x[i]));
}

// d silu / dx = s (1 + x (1 - s)), s = sigmoid(x).
template <typename T>
void silu_bwd(T* dx, const T* dy, const T* x, int64_t n) {
#pragma omp parallel for simd if (parallel : n >= kParallelGrain) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const T s = sigmoid(x[i]);
    dx[i] += dy[i] * s * (T(1) + x[i] * (T(1) - s));
  }
}

template <typename T>
void swiglu_fwd(T* h, const T* gate, const T* up, int64_t n) {
#pragma omp parallel for simd if (parallel : n >= kParallelGrain) schedule(static)
  for (int64_t i = 0; i < n; ++i) h[i] = gate[i] / (T(1) + vexp(-gate[i])) * up[i];
}

namespace {
// The wanted gradients are template flags so each variant's loop has no branches and vectorises.
// `over`: write the gradients instead of adding to them.
template <typename T, bool want_gate, bool want_up, bool over>
void swiglu_bwd_loop(T* dgate, T* dup, const T* dh, const T* gate, const T* up, int64_t n) {
#pragma omp parallel for simd if (parallel : n >= kParallelGrain) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const T g = gate[i], s = sigmoid(g);
    if (want_gate) dgate[i] = (over ? T(0) : dgate[i]) + dh[i] * up[i] * s * (T(1) + g * (T(1) - s));
    if (want_up) dup[i] = (over ? T(0) : dup[i]) + dh[i] * g * s;
  }
}

template <typename T, bool over>
void swiglu_bwd_pick(T* dgate, T* dup, const T* dh, const T* gate, const T* up, int64_t n) {
  if (dgate && dup)
    swiglu_bwd_loop<T, true, true, over>(dgate, dup, dh, gate, up, n);
  else if (dgate)
    swiglu_bwd_loop<T, true, false, over>(dgate, dup, dh, gate, up, n);
  else if (dup)
    swiglu_bwd_loop<T, false, true, over>(dgate, dup, dh, gate, up, n);
}
}  // namespace

template <typename T>
void swiglu_bwd(T* dgate, T* dup, const T* dh, const T* gate, const T* up, int64_t n, bool overwrite) {
  if (overwrite)
    swiglu_bwd_pick<T, true>(dgate, dup, dh, gate, up, n);
  else
    swiglu_bwd_pick<T, false>(dgate, dup, dh, gate, up, n);
}

template <typename T>
void gelu_fwd(T* y, const T* x, int64_t n) {
  const T k = T(M_SQRT1_2);
#pragma omp parallel for simd if (parallel : n >= kParallelGrain) schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * T(0.5) * (T(1) + std::erf(x[i] * k));
}

// d gelu / dx = Phi(x) + x phi(x), phi the standard normal density.
template <typename T>
void gelu_bwd(T* dx, const T* dy, const T* x, int64_t n) {
  const T k = T(M_SQRT1_2), kpdf = T(M_2_SQRTPI * M_SQRT1_2 * 0.5);
#pragma omp parallel for simd if (parallel : n >= kParallelGrain) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const T cdf = T(0.5) * (T(1) + std::erf(x[i] * k));
    const T pdf = vexp(T(-0.5) * x[i] * x[i]) * kpdf;
    dx[i] += dy[i] * (cdf + x[i] * pdf);
  }
}

#define TV_INSTANTIATE(T)                                                     \
  template void silu_fwd<T>(T*, const T*, int64_t);                           \
  template void silu_bwd<T>(T*, const T*, const T*, int64_t);                 \
  template void swiglu_fwd<T>(T*, const T*, const T*, int64_t);               \
  template void swiglu_bwd<T>(T*, T*, const T*, const T*, const T*, int64_t, bool); \
  template void gelu_fwd<T>(T*, const T*, int64_t);                           \
  template void gelu_bwd<T>(T*, const T*, const T*, int64_t);
TV_INSTANTIATE(float)
TV_INSTANTIATE(double)
#undef TV_INSTANTIATE

}  // namespace tv::cpu
