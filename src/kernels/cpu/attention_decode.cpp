// Decode attention on the CPU: one new query row per sequence against that sequence's own KV cache.
//
// Row i sits at position pos = kv_len[i] - 1 (its own key and value are already in the cache) and sees
// the keys [chunk start or 0, pos] (causal; chunked layers only their own chunk). One work item per
// (row, kv head): the H / Hkv query heads of the group share it, so each key and value row of the
// cache is read once per step for all of them. Two passes over the visible keys: scores of every query
// head of the group (dot products vectorised along Dh), then the softmax (exponentials vectorised along
// the keys) and the weighted sum of the values (vectorised along Dh). The scores live in a per-thread buffer that only grows.
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

// og[r] (+)= sum over keys j of p[r * nk + j] * v_j for the rep heads of a group, v_j = vb + j * ld, with
// each head's output (NV vectors) in registers: blocks of keys small enough to stay in cache are walked
// once per head, so each value row comes from memory once, and the outputs are loaded and stored once
// per block rather than once per key. Every element sums over j in increasing order.
template <typename T, int NV>
void weighted_values(T* og, const T* p, int64_t rep, int64_t nk, const T* vb, int64_t ld) {
  constexpr int64_t L = 32 / sizeof(T), kBlock = 64;
  for (int64_t j0 = 0; j0 < nk; j0 += kBlock) {
    const int64_t j1 = std::min(nk, j0 + kBlock);
    for (int64_t r = 0; r < rep; ++r) {
      Vec<T> acc[NV];
      for (int v = 0; v < NV; ++v) acc[v] = j0 == 0 ? Vec<T>{} : vload(og + r * NV * L + v * L);
      const T* pr = p + r * nk;
      for (int64_t j = j0; j < j1; ++j) {
        const Vec<T> pj = splat(pr[j]);
        const T* vr = vb + j * ld;
        for (int v = 0; v < NV; ++v) acc[v] += pj * vload(vr + v * L);
      }
      for (int v = 0; v < NV; ++v) vstore(og + r * NV * L + v * L, acc[v]);
    }
  }
}

// The same for any Dh: one value row at a time into every head's output.
template <typename T>
void weighted_values_any(T* og, const T* p, int64_t rep, int64_t nk, int64_t Dh, const T* vb, int64_t ld) {
  std::fill(og, og + rep * Dh, T(0));
  for (int64_t j = 0; j < nk; ++j) {
    const T* vr = vb + j * ld;
    for (int64_t r = 0; r < rep; ++r) axpy(og + r * Dh, p[r * nk + j], vr, Dh);
  }
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
  constexpr int64_t L = 32 / sizeof(T);

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
        // The exponentials on whole vectors (vexp: libm's exp would be one call per score).
        Vec<T> sv{};
        int64_t j = 0;
        for (; j + L <= nk; j += L) {
          const Vec<T> e = vexp_lanes<T>(vload(s + j) - splat(mx));
          vstore(s + j, e);
          sv += e;
        }
        T sum = 0;
        for (int64_t w = 0; w < L; ++w) sum += sv[w];
        for (; j < nk; ++j) sum += s[j] = vexp(s[j] - mx);
        inv[size_t(r)] = T(1) / sum;
      }
      // Values: each value row from memory once for the whole group.
      const T* p = scores.data();
      switch (Dh % L == 0 ? Dh / L : 0) {
        case 1: weighted_values<T, 1>(og, p, rep, nk, vb, ld); break;
        case 2: weighted_values<T, 2>(og, p, rep, nk, vb, ld); break;
        case 4: weighted_values<T, 4>(og, p, rep, nk, vb, ld); break;
        case 8: weighted_values<T, 8>(og, p, rep, nk, vb, ld); break;
        case 16: weighted_values<T, 16>(og, p, rep, nk, vb, ld); break;
        default: weighted_values_any(og, p, rep, nk, Dh, vb, ld);
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
