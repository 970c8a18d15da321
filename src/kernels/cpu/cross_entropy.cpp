// Cross-entropy fused with log-softmax, one row per logit vector. Rows are independent: parallel
// over rows. Each row is read twice (max, then sum of exponentials; a 32k-wide row stays in L2),
// and the backward once more. Float rows use the vectorisable exp; sums run in 16 float lanes per
// block of 512 and add up in double, so the error does not grow with the vocabulary.
#include <cmath>
#include <limits>

#include <vector>

#include "kernels/cpu/bf16.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/grain.h"
#include "kernels/cpu/vec.h"
#include "kernels/cpu/vec_exp.h"

namespace tv::cpu {
namespace {

// 16 partial results per row (two float vectors, four double ones), combined in lane order at the end.
constexpr int64_t kLanes = 16;

template <typename T>
T lane_max(const T* x, int64_t n) {
  constexpr int64_t L = 32 / sizeof(T), NV = kLanes / L;
  Vec<T> part[NV];
  for (auto& p : part) p = splat(-std::numeric_limits<T>::infinity());
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int64_t v = 0; v < NV; ++v) {
      const Vec<T> xv = vload(x + j + v * L);
      part[v] = xv > part[v] ? xv : part[v];
    }
  T m = -std::numeric_limits<T>::infinity();
  for (int64_t v = 0; v < NV; ++v)
    for (int64_t l = 0; l < L; ++l) m = part[v][l] > m ? part[v][l] : m;
  for (; j < n; ++j) m = x[j] > m ? x[j] : m;
  return m;
}

// sum_j exp(x[j] - m), in double across blocks of 512; with kStore, each exp(x[j] - m) is also written
// to e[j] (e may be x itself: each x[j] is read before e[j] is written).
template <bool kStore, typename T>
double sum_exp(const T* x, T* e, int64_t n, T m) {
  constexpr int64_t kBlock = 512, L = 32 / sizeof(T), NV = kLanes / L;
  const Vec<T> mv = splat(m);
  double total = 0;
  for (int64_t b0 = 0; b0 < n; b0 += kBlock) {
    const int64_t b1 = b0 + kBlock < n ? b0 + kBlock : n;
    Vec<T> part[NV] = {};
    int64_t j = b0;
    for (; j + kLanes <= b1; j += kLanes)
      for (int64_t v = 0; v < NV; ++v) {
        const Vec<T> ev = vexp_lanes<T>(vload(x + j + v * L) - mv);
        if (kStore) vstore(e + j + v * L, ev);
        part[v] += ev;
      }
    T s = 0;
    for (int64_t v = 0; v < NV; ++v)
      for (int64_t l = 0; l < L; ++l) s += part[v][l];
    for (; j < b1; ++j) {
      const T ev = vexp(x[j] - m);
      if (kStore) e[j] = ev;
      s += ev;
    }
    total += double(s);
  }
  return total;
}

}  // namespace

template <typename T>
int64_t cross_entropy_with_grad(T* losses, T* dlogits, const T* logits, const int32_t* targets, int64_t N, int64_t V,
                                T grad_scale, int32_t ignore_index) {
  int64_t counted = 0;
#pragma omp parallel for schedule(static) reduction(+ : counted) if (N * V > kParallelGrain)
  for (int64_t n = 0; n < N; ++n) {
    const T* x = logits + n * V;
    T* d = dlogits + n * V;
    if (targets[n] == ignore_index) {
      losses[n] = 0;
      for (int64_t j = 0; j < V; ++j) d[j] = 0;
      continue;
    }
    const T m = lane_max(x, V), xt = x[targets[n]];
    const double s = sum_exp<true>(x, d, V, m);  // the same sum as cross_entropy_fwd: the same loss bits
    losses[n] = T(double(m) + std::log(s) - double(xt));
    const T c = T(double(grad_scale) / s);  // softmax = exp(x - m) / s
    for (int64_t j = 0; j < V; ++j) d[j] *= c;  // (auto-vectorised)
    d[targets[n]] -= grad_scale;
    ++counted;
  }
  return counted;
}

namespace {

// One row of cross_entropy_with_grad_bf16: its loss and its gradient row d, or zeros for an ignored row.
// e: V floats of scratch for the exponentials (may be x itself).
void ce_grad_row_bf16(float* loss, const float* x, float* e, uint16_t* d, int32_t target, int64_t V,
                      float grad_scale, int32_t ignore_index) {
  if (target == ignore_index) {
    *loss = 0;
    for (int64_t j = 0; j < V; ++j) d[j] = 0;
    return;
  }
  const float m = lane_max(x, V), xt = x[target];
  const double s = sum_exp<true>(x, e, V, m);
  const float c = float(double(grad_scale) / s);
  scale_round_bf16(d, e, c, V);
  d[target] = bf16_round(e[target] * c - grad_scale);
  *loss = float(double(m) + std::log(s) - double(xt));
}

int64_t count_targets(const int32_t* targets, int64_t N, int32_t ignore_index) {
  int64_t counted = 0;
  for (int64_t n = 0; n < N; ++n) counted += targets[n] != ignore_index;
  return counted;
}

}  // namespace

int64_t cross_entropy_with_grad_bf16(float* losses, uint16_t* dlogits, const float* logits, const int32_t* targets,
                                     int64_t N, int64_t V, float grad_scale, int32_t ignore_index) {
#pragma omp parallel if (N * V > kParallelGrain)
  {
    std::vector<float> e(static_cast<size_t>(V));  // this thread's exponentials of one row
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n)
      ce_grad_row_bf16(losses + n, logits + n * V, e.data(), dlogits + n * V, targets[n], V, grad_scale,
                       ignore_index);
  }
  return count_targets(targets, N, ignore_index);
}

int64_t linear_cross_entropy_with_grad_bf16(float* losses, uint16_t* dlogits, const float* x, const float* w,
                                            const int32_t* targets, int64_t N, int64_t D, int64_t V, float grad_scale,
                                            int32_t ignore_index) {
  // Each block of logit rows is turned into losses and gradients while it is still in cache, by the
  // thread that computed it; the exponentials overwrite the block.
  gemm_bf16_rows(true, N, V, D, x, D, w, D, [&](int64_t m0, int64_t mc, float* c, int64_t ldc) {
    for (int64_t r = 0; r < mc; ++r)
      ce_grad_row_bf16(losses + m0 + r, c + r * ldc, c + r * ldc, dlogits + (m0 + r) * V, targets[m0 + r], V,
                       grad_scale, ignore_index);
  });
  return count_targets(targets, N, ignore_index);
}

template <typename T>
int64_t cross_entropy_fwd(T* losses, T* lse, const T* logits, const int32_t* targets, int64_t N, int64_t V,
                          int32_t ignore_index) {
  int64_t counted = 0;
#pragma omp parallel for schedule(static) reduction(+ : counted) if (N * V > kParallelGrain)
  for (int64_t n = 0; n < N; ++n) {
    if (targets[n] == ignore_index) {  // skipped: nothing reads an ignored row's lse
      losses[n] = 0;
      lse[n] = 0;
      continue;
    }
    const T* x = logits + n * V;
    const T m = lane_max(x, V);
    const double l = double(m) + std::log(sum_exp<false>(x, static_cast<T*>(nullptr), V, m));
    lse[n] = T(l);
    losses[n] = T(l - double(x[targets[n]]));
    ++counted;
  }
  return counted;
}

template <typename T>
void cross_entropy_bwd(T* dlogits, const T* dlosses, const T* logits, const int32_t* targets, const T* lse,
                       int64_t N, int64_t V, int32_t ignore_index) {
#pragma omp parallel for schedule(static) if (N * V > kParallelGrain)
  for (int64_t n = 0; n < N; ++n) {
    if (targets[n] == ignore_index) continue;
    const T g = dlosses[n], l = lse[n];
    const T* x = logits + n * V;
    T* d = dlogits + n * V;
    constexpr int64_t L = 32 / sizeof(T);
    int64_t j = 0;
    for (; j + L <= V; j += L) vstore(d + j, vload(d + j) + splat(g) * vexp_lanes<T>(vload(x + j) - splat(l)));
    for (; j < V; ++j) d[j] += g * vexp(x[j] - l);
    d[targets[n]] -= g;
  }
}

template int64_t cross_entropy_with_grad<float>(float*, float*, const float*, const int32_t*, int64_t, int64_t, float,
                                                int32_t);
template int64_t cross_entropy_with_grad<double>(double*, double*, const double*, const int32_t*, int64_t, int64_t,
                                                 double, int32_t);
template int64_t cross_entropy_fwd<float>(float*, float*, const float*, const int32_t*, int64_t, int64_t, int32_t);
template int64_t cross_entropy_fwd<double>(double*, double*, const double*, const int32_t*, int64_t, int64_t,
                                           int32_t);
template void cross_entropy_bwd<float>(float*, const float*, const float*, const int32_t*, const float*, int64_t,
                                       int64_t, int32_t);
template void cross_entropy_bwd<double>(double*, const double*, const double*, const int32_t*, const double*,
                                        int64_t, int64_t, int32_t);

}  // namespace tv::cpu
