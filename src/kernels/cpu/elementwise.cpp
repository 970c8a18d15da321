#include <algorithm>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/grain.h"

namespace tv::cpu {

template <typename T>
void add(T* y, const T* x, double alpha, int64_t n) {
  const T a = T(alpha);
#pragma omp parallel for simd if (parallel : n >= kParallelGrain) schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

template <typename T>
void scale(T* y, double alpha, int64_t n) {
  const T a = T(alpha);
#pragma omp parallel for simd if (parallel : n >= kParallelGrain) schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] *= a;
}

// Fixed-size blocks summed in double, then added in block order: the same result for any thread count.
template <typename T>
double sum_squares(const T* x, int64_t n) {
  constexpr int64_t kBlock = 1 << 14;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> part(size_t(blocks), 0.0);
#pragma omp parallel for if (n >= kParallelGrain) schedule(static)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t end = std::min(n, (b + 1) * kBlock);
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = b * kBlock; i < end; ++i) s += double(x[i]) * double(x[i]);
    part[b] = s;
  }
  double total = 0;
  for (double p : part) total += p;
  return total;
}

template <typename T>
void sum_squares_multi(const T* const* xs, const int64_t* ns, int64_t count, double* out) {
  // The blocks of sum_squares for every tensor, computed in one parallel region, then added per tensor
  // in block order as sum_squares adds them.
  constexpr int64_t kBlock = 1 << 14;
  std::vector<int64_t> first(size_t(count) + 1, 0);
  int64_t total = 0;
  for (int64_t t = 0; t < count; ++t) {
    first[size_t(t) + 1] = first[size_t(t)] + (ns[t] + kBlock - 1) / kBlock;
    total += ns[t];
  }
  std::vector<double> part(size_t(first.back()), 0.0);
#pragma omp parallel for if (total >= kParallelGrain) schedule(static)
  for (int64_t k = 0; k < first.back(); ++k) {
    const int64_t t = int64_t(std::upper_bound(first.begin(), first.end(), k) - first.begin()) - 1;
    const T* x = xs[t];
    const int64_t i0 = (k - first[size_t(t)]) * kBlock, end = std::min(ns[t], i0 + kBlock);
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = i0; i < end; ++i) s += double(x[i]) * double(x[i]);
    part[size_t(k)] = s;
  }
  for (int64_t t = 0; t < count; ++t) {
    double s = 0;
    for (int64_t k = first[size_t(t)]; k < first[size_t(t) + 1]; ++k) s += part[size_t(k)];
    out[t] = s;
  }
}

#define TV_INSTANTIATE(T)                              \
  template void add<T>(T*, const T*, double, int64_t); \
  template void scale<T>(T*, double, int64_t);         \
  template double sum_squares<T>(const T*, int64_t);   \
  template void sum_squares_multi<T>(const T* const*, const int64_t*, int64_t, double*);
TV_INSTANTIATE(float)
TV_INSTANTIATE(double)
#undef TV_INSTANTIATE

}  // namespace tv::cpu
