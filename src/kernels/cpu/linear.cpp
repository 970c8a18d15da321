#include <algorithm>
#include <vector>

#include "kernels/cpu/cpu_ops.h"

namespace tv::cpu {

namespace {

// Weight-gradient products dw (+)= dy^T @ x, each overwriting its C or adding to it as its flag says: one
// grouped call per kind.
template <typename T>
void weight_grads(const std::vector<GemmGroup<T>>& probs, const std::vector<char>& overwrite) {
  for (bool over : {true, false}) {
    std::vector<GemmGroup<T>> part;
    for (size_t i = 0; i < probs.size(); ++i)
      if (bool(overwrite[i]) == over) part.push_back(probs[i]);
    gemm_grouped<T>(true, false, T(1), T(over ? 0 : 1), part.data(), int64_t(part.size()));
  }
}

}  // namespace

template <typename T>
void linear_fwd(T* y, const T* x, const T* w, const T* b, int64_t N, int64_t in, int64_t out) {
  // y = x @ w^T (+ b): with a bias, prefill rows with it and let the GEMM accumulate (beta = 1).
  if (b) {
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t o = 0; o < out; ++o) y[n * out + o] = b[o];
  }
  gemm<T>(false, true, N, out, in, T(1), x, in, w, in, b ? T(1) : T(0), y, out);
}

template <typename T>
void linear_bwd(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, int64_t N, int64_t in, int64_t out,
                bool dx_overwrite, bool dw_overwrite) {
  if (dx) gemm<T>(false, false, N, in, out, T(1), dy, out, w, in, T(dx_overwrite ? 0 : 1), dx, in);  // dx (+)= dy @ w
  if (dw) gemm<T>(true, false, out, in, N, T(1), dy, out, x, in, T(dw_overwrite ? 0 : 1), dw, in);  // dw (+)= dy^T x
  if (db) {
#pragma omp parallel for schedule(static)
    for (int64_t o = 0; o < out; ++o) {
      T acc = 0;
      for (int64_t n = 0; n < N; ++n) acc += dy[n * out + o];
      db[o] += acc;
    }
  }
}

template <typename T>
void linear_bwd_shared_input(T* dx, T* const* dw, const T* const* dy, const T* x, const T* const* w,
                             const int64_t* outs, int64_t count, int64_t N, int64_t in, bool dx_overwrite,
                             const bool* dw_overwrite) {
  if (dx)  // dx (+)= sum_i dy_i @ w_i, in order: the bits of one linear_bwd after the other
    for (int64_t i = 0; i < count; ++i)
      gemm<T>(false, false, N, in, outs[i], T(1), dy[i], outs[i], w[i], in, T(i == 0 && dx_overwrite ? 0 : 1), dx, in);
  // dw_i (+)= dy_i^T @ x: with bf16 matmuls x is packed once for all the products of one kind.
  std::vector<GemmGroup<T>> probs;
  std::vector<char> over;
  for (int64_t i = 0; i < count; ++i)
    if (dw[i]) {
      probs.push_back({outs[i], in, N, dy[i], outs[i], x, in, dw[i], in});
      over.push_back(dw_overwrite && dw_overwrite[i]);
    }
  weight_grads(probs, over);
}

void linear_bwd_bf16dy(float* dx, float* dw, const uint16_t* dy, const float* x, const float* w, int64_t N,
                       int64_t in, int64_t out, bool dx_overwrite, bool dw_overwrite) {
  if (dx) gemm_bf16_a16(false, false, N, in, out, 1.0f, dy, out, w, in, dx_overwrite ? 0.0f : 1.0f, dx, in);
  if (dw) gemm_bf16_a16(true, false, out, in, N, 1.0f, dy, out, x, in, dw_overwrite ? 0.0f : 1.0f, dw, in);
}

template void linear_fwd<float>(float*, const float*, const float*, const float*, int64_t, int64_t, int64_t);
template void linear_fwd<double>(double*, const double*, const double*, const double*, int64_t, int64_t, int64_t);
template void linear_bwd<float>(float*, float*, float*, const float*, const float*, const float*, int64_t, int64_t,
                                int64_t, bool, bool);
template void linear_bwd<double>(double*, double*, double*, const double*, const double*, const double*, int64_t,
                                 int64_t, int64_t, bool, bool);
template void linear_bwd_shared_input<float>(float*, float* const*, const float* const*, const float*,
                                             const float* const*, const int64_t*, int64_t, int64_t, int64_t, bool,
                                             const bool*);
template void linear_bwd_shared_input<double>(double*, double* const*, const double* const*, const double*,
                                              const double* const*, const int64_t*, int64_t, int64_t, int64_t, bool,
                                              const bool*);

}  // namespace tv::cpu

namespace tv::cpu {

template <typename T>
void linear_grouped_fwd(T* y, const T* x, const T* const* w, const int64_t* offsets, int64_t groups, int64_t in,
                        int64_t out) {
  std::vector<GemmGroup<T>> probs;
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t r0 = offsets[g], n = offsets[g + 1] - r0;
    if (n > 0) probs.push_back({n, out, in, x + r0 * in, in, w[g], in, y + r0 * out, out});
  }
  gemm_grouped<T>(false, true, T(1), T(0), probs.data(), int64_t(probs.size()));
}

template <typename T>
void linear_grouped_bwd(T* dx, T* const* dw, const T* dy, const T* x, const T* const* w, const int64_t* offsets,
                        int64_t groups, int64_t in, int64_t out, bool dx_overwrite, const bool* dw_overwrite) {
  std::vector<GemmGroup<T>> probs;
  if (dx) {  // dx[rows of g] += dy[rows of g] @ w[g]
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t r0 = offsets[g], n = offsets[g + 1] - r0;
      if (n > 0) probs.push_back({n, in, out, dy + r0 * out, out, w[g], in, dx + r0 * in, in});
    }
    gemm_grouped<T>(false, false, T(1), T(dx_overwrite ? 0 : 1), probs.data(), int64_t(probs.size()));
  }
  // dw[g] (+)= dy[rows of g]^T @ x[rows of g].
  probs.clear();
  std::vector<char> over;
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t r0 = offsets[g], n = offsets[g + 1] - r0;
    const bool overwrite = dw_overwrite && dw_overwrite[g];
    if (!dw[g]) continue;
    if (n > 0) {
      probs.push_back({out, in, n, dy + r0 * out, out, x + r0 * in, in, dw[g], in});
      over.push_back(overwrite);
    } else if (overwrite) {
      std::fill(dw[g], dw[g] + out * in, T(0));  // no rows: the product is zero
    }
  }
  weight_grads(probs, over);
}

template void linear_grouped_fwd<float>(float*, const float*, const float* const*, const int64_t*, int64_t, int64_t,
                                        int64_t);
template void linear_grouped_fwd<double>(double*, const double*, const double* const*, const int64_t*, int64_t,
                                         int64_t, int64_t);
template void linear_grouped_bwd<float>(float*, float* const*, const float*, const float*, const float* const*,
                                        const int64_t*, int64_t, int64_t, int64_t, bool, const bool*);
template void linear_grouped_bwd<double>(double*, double* const*, const double*, const double*, const double* const*,
                                         const int64_t*, int64_t, int64_t, int64_t, bool, const bool*);

}  // namespace tv::cpu
