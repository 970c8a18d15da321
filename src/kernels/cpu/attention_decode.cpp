// Decode attention on the CPU: one new query row per sequence against that sequence's own KV cache.
//
// Row i sits at position pos = kv_len[i] - 1 (its own key and value are already in the cache) and sees
// the keys [chunk start or 0, pos] (causal; chunked layers only their own chunk). One work item per
// (row, kv head): the H / Hkv query heads of the group share it, so each key and value row of the
// cache is read once per step for all of them. Two passes over the visible keys: scores of every query
// head of the group (dot products vectorised along Dh), then the softmax and the weighted sum of the
// values (vectorised along Dh). The scores live in a per-thread buffer that only grows.
// OpenMP splits the items over the threads once the caches are long enough to be worth a team.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/grain.h"
#include "kernels/cpu/vec.h"

namespace tv::cpu {
namespace {

// x . y over n elements, n a multiple of the vector length or not.
template <typename T>
inline T dot(const T* __restrict x, const T* __restrict y, int64_t n) {
  constexpr int64_t L = 32 / sizeof(T);
  Vec<T> a0{}, a1{};
  int64_t d = 0;
  for (; d + 2 * L <= n; d += 2 * L) {
    a0 += vload(x + d) * vload(y + d);
    a1 += vload(x + d + L) * vload(y + d + L);
  }
  for (; d + L <= n; d += L) a0 += vload(x + d) * vload(y + d);
  a0 += a1;
  T s = 0;
  for (int64_t w = 0; w < L; ++w) s += a0[w];
  for (; d < n; ++d) s += x[d] * y[d];
  return s;
}

// y += a * x over n elements.
template <typename T>
inline void axpy(T* __restrict y, T a, const T* __restrict x, int64_t n) {
  constexpr int64_t L = 32 / sizeof(T);
  const Vec<T> av = splat(a);
  int64_t d = 0;
  for (; d + L <= n; d += L) vstore(y + d, vload(y + d) + av * vload(x + d));
  for (; d < n; ++d) y[d] += a * x[d];
}

}  // namespace

template <typename T>
void attention_decode_fwd(T* out, const T* q, const T* const* k, const T* const* v, const int64_t* kv_len, int64_t n,
                          int64_t H, int64_t Hkv, int64_t Dh, double scale, int64_t chunk_size) {
  const int64_t rep = H / Hkv, ld = Hkv * Dh, n_items = n * Hkv;
  int64_t work = 0;
  for (int64_t i = 0; i < n; ++i) work += kv_len[i];
  // A team only pays off on long caches: a short decode step is microseconds of work, and waking the
  // threads (on a busy machine, waiting for a descheduled one) costs more.
  const bool parallel = work * H * Dh > 64 * kParallelGrain && n_items > 1;
  const T sc = T(scale);

#pragma omp parallel if (parallel)
  {
    static thread_local std::vector<T> scores, inv;  // [rep, keys] of the item at hand; 1 / sum per head
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < n_items; ++item) {
      const int64_t i = item / Hkv, g = item % Hkv;
      const int64_t pos = kv_len[i] - 1;
      const int64_t lo = chunk_size > 0 ? (pos / chunk_size) * chunk_size : 0, nk = pos + 1 - lo;
      if (scores.size() < size_t(rep * nk)) scores.resize(size_t(rep * nk));
      if (inv.size() < size_t(rep)) inv.resize(size_t(rep));
      const T* kb = k[i] + lo * ld + g * Dh;
      const T* vb = v[i] + lo * ld + g * Dh;
      const T* qg = q + (i * H + g * rep) * Dh;
      T* og = out + (i * H + g * rep) * Dh;
      // Scores: each key row once for the whole group.
      for (int64_t j = 0; j < nk; ++j) {
        const T* kr = kb + j * ld;
        for (int64_t r = 0; r < rep; ++r) scores[size_t(r * nk + j)] = sc * dot(qg + r * Dh, kr, Dh);
      }
      // Softmax per query head; the normalisation is applied to the output at the end.
      for (int64_t r = 0; r < rep; ++r) {
        T* s = scores.data() + r * nk;
        T mx = -std::numeric_limits<T>::infinity();
        for (int64_t j = 0; j < nk; ++j) mx = std::max(mx, s[j]);
        T sum = 0;
        for (int64_t j = 0; j < nk; ++j) sum += s[j] = T(std::exp(s[j] - mx));
        inv[size_t(r)] = T(1) / sum;
        std::fill(og + r * Dh, og + (r + 1) * Dh, T(0));
      }
      // Values: each value row once for the whole group.
      for (int64_t j = 0; j < nk; ++j) {
        const T* vr = vb + j * ld;
        for (int64_t r = 0; r < rep; ++r) axpy(og + r * Dh, scores[size_t(r * nk + j)], vr, Dh);
      }
      for (int64_t r = 0; r < rep; ++r)
        for (int64_t d = 0; d < Dh; ++d) og[r * Dh + d] *= inv[size_t(r)];
    }
  }
}

template void attention_decode_fwd<float>(float*, const float*, const float* const*, const float* const*,
                                          const int64_t*, int64_t, int64_t, int64_t, int64_t, double, int64_t);
template void attention_decode_fwd<double>(double*, const double*, const double* const*, const double* const*,
                                           const int64_t*, int64_t, int64_t, int64_t, int64_t, double, int64_t);

}  // namespace tv::cpu
