// fp32 GEMM with bfloat16 operands (MatmulPrecision::BF16): both operands are rounded to bf16 while
// they are packed, products and sums stay fp32. With AVX512-BF16 the inner loop is VDPBF16PS, which
// multiplies two k-steps per lane per instruction, twice the rate of an fp32 FMA on the same width.
//
// Blocking (GotoBLAS/BLIS style): op(B) is packed once into NR-column panels of k-pairs; C is cut
// into tasks of up to MC rows x a range of panels; each task packs its rows of op(A) one KC block at a
// time and runs the MR x NR micro-kernel over them, the B micro-panel staying in L1.
// A k-pair is one 32-bit word: the bf16 of the even k in the low half, the odd k in the high half.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstring>
#include <vector>

#include "kernels/cpu/bf16.h"
#include "kernels/cpu/cpu_ops.h"

namespace tv::cpu {

namespace {

constexpr int kMR = 14;               // rows of C per micro-tile (28 accumulators + 2 B registers)
constexpr int kNR = 32;               // columns of C per micro-tile: two 16-lane vectors
constexpr int64_t kKCP = 256;         // k-pairs per K block (512 k): A micro-panel 14 KiB, B 32 KiB
constexpr int64_t kMC = kMR * 4;      // rows of C per task (measured best of 2-16 micro-panels)
constexpr int64_t kRowsMC = kMR * 2;  // rows per task of gemm_bf16_rows (28 x V floats: 0.9 MiB at V = 8k)

inline float round_bf16(float f) { return bf16_value(bf16_round(f)); }

// ---------------------------------------------------------------------------------------------------
// AVX512-BF16 path.
// GCC takes the target for a region with push_options; clang takes it as an attribute of every function.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512bf16")
// GCC 12's masked-load intrinsics trip a false -Wmaybe-uninitialized on their pass-through operand.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

inline __mmask16 lanes(int64_t n) { return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1u); }

// 16 k-pairs from two rows of fp32 (even k, odd k), n valid lanes; missing values are zero.
inline __m512i pair_rows(const float* even, const float* odd, int64_t n) {
  const __mmask16 m = lanes(n);
  __m512 e = _mm512_maskz_loadu_ps(m, even);
  __m512 o = odd ? _mm512_maskz_loadu_ps(m, odd) : _mm512_setzero_ps();
  __m512i lo = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(e));
  __m512i hi = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(o));
  return _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16));
}

// 16 k-pairs from 32 consecutive k of one row, n valid values (n <= 32); missing values are zero.
inline __m512i pair_run(const float* src, int64_t n) {
  __m512 lo = _mm512_maskz_loadu_ps(lanes(n), src);
  __m512 hi = n > 16 ? _mm512_maskz_loadu_ps(lanes(n - 16), src + 16) : _mm512_setzero_ps();
  return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}

// In-register transpose of a 16 x 16 block of 32-bit words: v[i][j] -> v[j][i].
inline void transpose16(__m512i v[16]) {
  __m512i t[16], u[16];
  for (int i = 0; i < 8; ++i) {  // per 128-bit lane: pairs of rows interleaved
    t[2 * i] = _mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]);
  }
  for (int g = 0; g < 4; ++g) {  // u[4g + e]: element e of each lane, rows 4g..4g+3
    u[4 * g + 0] = _mm512_unpacklo_epi64(t[4 * g], t[4 * g + 2]);
    u[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g], t[4 * g + 2]);
    u[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
    u[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
  }
  for (int e = 0; e < 4; ++e) {  // gather lane L of the four row groups: output row 4L + e
    const __m512i a = _mm512_shuffle_i32x4(u[e], u[4 + e], 0x88), b = _mm512_shuffle_i32x4(u[e], u[4 + e], 0xDD);
    const __m512i c = _mm512_shuffle_i32x4(u[8 + e], u[12 + e], 0x88), d = _mm512_shuffle_i32x4(u[8 + e], u[12 + e], 0xDD);
    v[e] = _mm512_shuffle_i32x4(a, c, 0x88);
    v[8 + e] = _mm512_shuffle_i32x4(a, c, 0xDD);
    v[4 + e] = _mm512_shuffle_i32x4(b, d, 0x88);
    v[12 + e] = _mm512_shuffle_i32x4(b, d, 0xDD);
  }
}

struct Operand {
  const float* p;
  int64_t ld;
  bool trans;
  const uint16_t* p16 = nullptr;  // A given in bf16 already (then p is unused)
};

// 16 k-pairs from two rows of bf16 (even k, odd k), n valid lanes; missing values are zero.
inline __m512i pair_rows(const uint16_t* even, const uint16_t* odd, int64_t n) {
  const __mmask16 m = lanes(n);
  __m512i lo = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, even));
  __m512i hi = odd ? _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, odd)) : _mm512_setzero_si512();
  return _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16));
}

// 16 k-pairs from 32 consecutive bf16 of one row, n valid values (n <= 32); missing values are zero.
inline __m512i pair_run(const uint16_t* src, int64_t n) {
  const __mmask32 m = n >= 32 ? __mmask32(0xffffffffu) : __mmask32((1u << n) - 1u);
  return _mm512_maskz_loadu_epi16(m, src);
}

// op(B) [K, N] -> panels of kNR columns: dst[panel][pair][kNR], all KP pairs, zero padded.
void pack_b_panel(uint32_t* dst, const Operand& b, int64_t K, int64_t KP, int64_t n0, int64_t nn) {
  if (!b.trans) {  // element (k, n) at p[k * ld + n]: rows 2q and 2q+1 give 16 columns at a time
    for (int64_t q = 0; q < KP; ++q) {
      const float* even = b.p + 2 * q * b.ld + n0;
      const float* odd = 2 * q + 1 < K ? even + b.ld : nullptr;
      for (int64_t c = 0; c < kNR; c += 16) {
        __m512i v = c < nn ? pair_rows(even + c, odd ? odd + c : nullptr, nn - c) : _mm512_setzero_si512();
        _mm512_storeu_si512(dst + q * kNR + c, v);
      }
    }
    return;
  }
  // element (k, n) at p[n * ld + k]: each column is a run of k; convert 16 pairs of 16 columns, transpose.
  for (int64_t q0 = 0; q0 < KP; q0 += 16) {
    const int64_t nq = std::min<int64_t>(16, KP - q0);
    for (int64_t c0 = 0; c0 < kNR; c0 += 16) {
      __m512i cols[16];
      for (int64_t c = 0; c < 16; ++c)
        cols[c] = c0 + c < nn ? pair_run(b.p + (n0 + c0 + c) * b.ld + 2 * q0, std::min<int64_t>(32, K - 2 * q0))
                              : _mm512_setzero_si512();
      transpose16(cols);
      for (int64_t t = 0; t < nq; ++t) _mm512_storeu_si512(dst + (q0 + t) * kNR + c0, cols[t]);
    }
  }
}

// Rows [m0, m0 + mc) of op(A), pairs [q0, q0 + nq) -> micro-panels of kMR rows, kMR * kKCP words apart.
// Not transposed: each micro-panel row-major [kMR][kKCP] (a row's pairs are contiguous in A too).
// Transposed: each micro-panel [nq][kMR] (a pair's rows are contiguous in A too); the pair loop is the
// outer one so that each row of the stored matrix is visited once per block, not once per micro-panel.
// E: float (rounded while packed) or uint16_t (bf16 already: the same layout, half the bytes to read).
template <typename E>
void pack_a_rows(uint32_t* dst, const E* p, int64_t ld, bool trans, int64_t K, int64_t m0, int64_t mc, int64_t q0,
                 int64_t nq) {
  const int64_t panels = (mc + kMR - 1) / kMR;
  if (!trans) {  // element (m, k) at p[m * ld + k]
    for (int64_t i = 0; i < panels; ++i)
      for (int64_t r = 0; r < kMR; ++r) {
        uint32_t* row = dst + i * kMR * kKCP + r * kKCP;
        const int64_t m = i * kMR + r;
        for (int64_t q = 0; q < nq; q += 16) {
          __m512i v = m < mc ? pair_run(p + (m0 + m) * ld + 2 * (q0 + q), std::min<int64_t>(32, K - 2 * (q0 + q)))
                             : _mm512_setzero_si512();
          _mm512_mask_storeu_epi32(row + q, lanes(nq - q), v);
        }
      }
    return;
  }
  for (int64_t q = 0; q < nq; ++q) {  // element (m, k) at p[k * ld + m]
    const int64_t k = 2 * (q0 + q);
    const E* even = p + k * ld + m0;
    const E* odd = k + 1 < K ? even + ld : nullptr;
    for (int64_t i = 0; i < panels; ++i) {
      const int64_t mr = std::min<int64_t>(kMR, mc - i * kMR);
      _mm512_mask_storeu_epi32(dst + i * kMR * kKCP + q * kMR, lanes(kMR),
                               pair_rows(even + i * kMR, odd ? odd + i * kMR : nullptr, mr));
    }
  }
}

void pack_a_block(uint32_t* dst, const Operand& a, int64_t K, int64_t m0, int64_t mc, int64_t q0, int64_t nq) {
  if (a.p16)
    pack_a_rows(dst, a.p16, a.ld, a.trans, K, m0, mc, q0, nq);
  else
    pack_a_rows(dst, a.p, a.ld, a.trans, K, m0, mc, q0, nq);
}

// C tile [mr, nr] (= alpha * A B + beta * C, beta == 0 never reads C) from nq k-pairs.
template <bool kRowMajorA>
void micro_kernel(int64_t nq, const uint32_t* a, const uint32_t* b, float* c, int64_t ldc, int64_t mr, int64_t nr,
                  float alpha, float beta) {
  __m512 acc[kMR][2];
#pragma GCC unroll 14
  for (int r = 0; r < kMR; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int64_t q = 0; q < nq; ++q) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(b + q * kNR);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(b + q * kNR + 16);
#pragma GCC unroll 14
    for (int r = 0; r < kMR; ++r) {
      const uint32_t w = kRowMajorA ? a[r * kKCP + q] : a[q * kMR + r];
      const __m512bh av = (__m512bh)_mm512_set1_epi32(int(w));
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], av, b0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], av, b1);
    }
  }
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  const __mmask16 m0 = lanes(nr), m1 = lanes(std::max<int64_t>(nr - 16, 0));
#pragma GCC unroll 14
  for (int r = 0; r < kMR; ++r) {
    if (r >= mr) break;
    float* row = c + r * ldc;
    __m512 y0 = _mm512_mul_ps(va, acc[r][0]), y1 = _mm512_mul_ps(va, acc[r][1]);
    if (beta != 0.0f) {
      y0 = _mm512_add_ps(y0, _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(m0, row)));
      y1 = _mm512_add_ps(y1, _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(m1, row + 16)));
    }
    _mm512_mask_storeu_ps(row, m0, y0);
    _mm512_mask_storeu_ps(row + 16, m1, y1);
  }
}

struct Plan {
  Operand a, b;
  int64_t M, N, K, KP, panels, m_tasks, n_tasks, panels_per_task;
  float* C;
  int64_t ldc;
  uint32_t* bpack;     // this problem's packed op(B)
  int64_t mc = kMC;    // rows of C per task
};

// c_block: when set, the task's rows go there (row i of the task at c_block + i * pl.ldc), not into pl.C.
void run_task(const Plan& pl, int64_t task, uint32_t* apack, float alpha, float beta, float* c_block = nullptr) {
  const int64_t mt = task / pl.n_tasks, nt = task % pl.n_tasks;
  const int64_t m0 = mt * pl.mc, mc = std::min(pl.mc, pl.M - m0);
  const int64_t j0 = nt * pl.panels_per_task, j1 = std::min(pl.panels, j0 + pl.panels_per_task);
  const int64_t row_panels = (mc + kMR - 1) / kMR;
  for (int64_t q0 = 0; q0 < pl.KP; q0 += kKCP) {
    const int64_t nq = std::min(kKCP, pl.KP - q0);
    pack_a_block(apack, pl.a, pl.K, m0, mc, q0, nq);
    const float bt = q0 == 0 ? beta : 1.0f;  // later K blocks accumulate onto the first
    for (int64_t j = j0; j < j1; ++j) {
      const uint32_t* bp = pl.bpack + (j * pl.KP + q0) * kNR;
      const int64_t nr = std::min<int64_t>(kNR, pl.N - j * kNR);
      for (int64_t i = 0; i < row_panels; ++i) {
        float* ct = (c_block ? c_block + i * kMR * pl.ldc : pl.C + (m0 + i * kMR) * pl.ldc) + j * kNR;
        const int64_t mr = std::min<int64_t>(kMR, mc - i * kMR);
        if (pl.a.trans)
          micro_kernel<false>(nq, apack + i * kMR * kKCP, bp, ct, pl.ldc, mr, nr, alpha, bt);
        else
          micro_kernel<true>(nq, apack + i * kMR * kKCP, bp, ct, pl.ldc, mr, nr, alpha, bt);
      }
    }
  }
}

// d[j] = bf16_round(e[j] * c): one conversion instruction per 16 values.
void scale_round_bf16_avx512(uint16_t* d, const float* e, float c, int64_t n) {
  const __m512 cv = _mm512_set1_ps(c);
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = lanes(n - j);
    const __m256i h = (__m256i)_mm512_cvtneps_pbh(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, e + j), cv));
    _mm256_mask_storeu_epi16(d + j, m, h);
  }
}

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif

// Packed B, reused between calls by the calling thread (the GEMMs are called outside parallel regions).
std::vector<uint32_t>& b_buffer() {
  static thread_local std::vector<uint32_t> buf;
  return buf;
}

// Every problem of a group in one parallel region: first all B panels are packed (once for problems that
// share their B), then the C tasks of all problems are shared out dynamically. A task's result does not
// depend on how C was cut into tasks, so a problem gives the same bits alone or in any group.
// a16: for a single problem, op(A) given in bf16 instead of probs->A.
void gemm_bf16_avx512(bool ta, bool tb, float alpha, float beta, const GemmGroup<float>* probs, int64_t n,
                      const uint16_t* a16 = nullptr) {
  const int threads = omp_get_max_threads();
  std::vector<Plan> plans;
  int64_t m_tasks = 0;
  for (int64_t p = 0; p < n; ++p) {
    const GemmGroup<float>& g = probs[p];
    if (g.M == 0 || g.N == 0) continue;
    if (g.K == 0) {  // nothing to multiply: C = beta C
      for (int64_t r = 0; r < g.M; ++r)
        for (int64_t c = 0; c < g.N; ++c) g.C[r * g.ldc + c] = beta == 0.0f ? 0.0f : beta * g.C[r * g.ldc + c];
      continue;
    }
    Plan pl{{g.A, g.lda, ta, a16}, {g.B, g.ldb, tb}, g.M, g.N, g.K, (g.K + 1) / 2, (g.N + kNR - 1) / kNR,
            (g.M + kMC - 1) / kMC, 1, 0, g.C, g.ldc, nullptr};
    m_tasks += pl.m_tasks;
    plans.push_back(pl);
  }
  if (plans.empty()) return;
  // Enough tasks to keep every thread busy: split the columns when there are few row blocks.
  const int64_t split = m_tasks < 4 * threads ? (4 * threads + m_tasks - 1) / m_tasks : 1;
  std::vector<int64_t> task_end;  // running totals over the plans
  int64_t tasks = 0, bwords = 0;
  std::vector<std::pair<int64_t, int64_t>> pack;  // (plan, panel) of every B panel to pack
  std::vector<int64_t> owner(plans.size());      // the plan whose packed B a plan uses
  for (size_t p = 0; p < plans.size(); ++p) {
    Plan& pl = plans[p];
    pl.n_tasks = std::min(pl.panels, split);
    pl.panels_per_task = (pl.panels + pl.n_tasks - 1) / pl.n_tasks;
    pl.n_tasks = (pl.panels + pl.panels_per_task - 1) / pl.panels_per_task;
    task_end.push_back(tasks += pl.m_tasks * pl.n_tasks);
    // Problems with the same op(B) (the weight gradients of several layers fed by one input) pack it once.
    owner[p] = int64_t(p);
    for (size_t q = 0; q < p; ++q)
      if (owner[q] == int64_t(q) && plans[q].b.p == pl.b.p && plans[q].b.ld == pl.b.ld &&
          plans[q].b.trans == pl.b.trans && plans[q].K == pl.K && plans[q].N == pl.N)
        owner[p] = int64_t(q);
    if (owner[p] != int64_t(p)) continue;
    bwords += pl.panels * pl.KP * kNR;
    for (int64_t j = 0; j < pl.panels; ++j) pack.push_back({int64_t(p), j});
  }
  std::vector<uint32_t>& bbuf = b_buffer();
  if (bbuf.size() < size_t(bwords)) bbuf.resize(size_t(bwords));
  int64_t off = 0;
  for (size_t p = 0; p < plans.size(); ++p) {
    if (owner[p] != int64_t(p)) continue;
    plans[p].bpack = bbuf.data() + off;
    off += plans[p].panels * plans[p].KP * kNR;
  }
  for (size_t p = 0; p < plans.size(); ++p) plans[p].bpack = plans[size_t(owner[p])].bpack;
  const int team = int(std::min<int64_t>(threads, std::max<int64_t>(tasks, int64_t(pack.size()))));
#pragma omp parallel num_threads(team)
  {
    static thread_local std::vector<uint32_t> abuf;
    if (abuf.size() < size_t(kMC * kKCP)) abuf.resize(size_t(kMC * kKCP));
#pragma omp for schedule(static)
    for (size_t i = 0; i < pack.size(); ++i) {
      const Plan& pl = plans[size_t(pack[i].first)];
      const int64_t j = pack[i].second;
      pack_b_panel(pl.bpack + j * pl.KP * kNR, pl.b, pl.K, pl.KP, j * kNR, std::min<int64_t>(kNR, pl.N - j * kNR));
    }
#pragma omp for schedule(dynamic, 1)
    for (int64_t gt = 0; gt < tasks; ++gt) {
      const int64_t p = int64_t(std::upper_bound(task_end.begin(), task_end.end(), gt) - task_end.begin());
      run_task(plans[size_t(p)], gt - (p ? task_end[size_t(p - 1)] : 0), abuf.data(), alpha, beta);
    }
  }
}

// C = A op(B) in blocks of kRowsMC rows: each task computes whole rows of C into its thread's buffer and
// hands them to `rows`. The same tiles and sums as gemm_bf16_avx512, so the same bits. The columns are
// never split: with fewer than a few blocks of rows per thread, some threads idle.
void gemm_bf16_rows_avx512(bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                           int64_t ldb, const GemmRowsFn& rows) {
  Plan pl{{A, lda, false}, {B, ldb, tb}, M, N, K, (K + 1) / 2, (N + kNR - 1) / kNR, (M + kRowsMC - 1) / kRowsMC, 1, 0,
          nullptr, 0, nullptr, kRowsMC};
  pl.panels_per_task = pl.panels;
  pl.ldc = pl.panels * kNR;
  std::vector<uint32_t>& bbuf = b_buffer();
  if (bbuf.size() < size_t(pl.panels * pl.KP * kNR)) bbuf.resize(size_t(pl.panels * pl.KP * kNR));
  pl.bpack = bbuf.data();
  const int team = int(std::min<int64_t>(omp_get_max_threads(), std::max(pl.m_tasks, pl.panels)));
#pragma omp parallel num_threads(team)
  {
    static thread_local std::vector<uint32_t> abuf;
    static thread_local std::vector<float> cbuf;
    if (abuf.size() < size_t(kMC * kKCP)) abuf.resize(size_t(kMC * kKCP));
    if (cbuf.size() < size_t(kRowsMC * pl.ldc)) cbuf.resize(size_t(kRowsMC * pl.ldc));
#pragma omp for schedule(static)
    for (int64_t j = 0; j < pl.panels; ++j)
      pack_b_panel(pl.bpack + j * pl.KP * kNR, pl.b, K, pl.KP, j * kNR, std::min<int64_t>(kNR, N - j * kNR));
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < pl.m_tasks; ++t) {
      run_task(pl, t, abuf.data(), 1.0f, 0.0f, cbuf.data());
      rows(t * kRowsMC, std::min(kRowsMC, M - t * kRowsMC), cbuf.data(), pl.ldc);
    }
  }
}

std::atomic<bool> g_native_allowed{true};

bool cpu_has_avx512_bf16() {
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
  return has && g_native_allowed.load(std::memory_order_relaxed);
}

}  // namespace

void gemm_bf16_emulated(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                        int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  // Round copies of op(A) and op(B) (as stored) to bf16, then multiply in fp32: the same products,
  // summed in a different order.
  const int64_t a_rows = ta ? K : M, a_cols = ta ? M : K, b_rows = tb ? N : K, b_cols = tb ? K : N;
  std::vector<float> ar(size_t(a_rows * a_cols)), br(size_t(b_rows * b_cols));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < a_rows; ++i)
    for (int64_t j = 0; j < a_cols; ++j) ar[size_t(i * a_cols + j)] = round_bf16(A[i * lda + j]);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < b_rows; ++i)
    for (int64_t j = 0; j < b_cols; ++j) br[size_t(i * b_cols + j)] = round_bf16(B[i * ldb + j]);
  gemm_f32(ta, tb, M, N, K, alpha, ar.data(), a_cols, br.data(), b_cols, beta, C, ldc);
}

bool gemm_bf16_native() { return cpu_has_avx512_bf16(); }

void scale_round_bf16(uint16_t* d, const float* e, float c, int64_t n) {
  if (cpu_has_avx512_bf16()) return scale_round_bf16_avx512(d, e, c, n);
  const Vec<float> cv = splat(c);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) bf16_round_lanes(d + j, vload(e + j) * cv);
  for (; j < n; ++j) d[j] = bf16_round(e[j] * c);
}

void allow_native_bf16(bool allowed) { g_native_allowed.store(allowed, std::memory_order_relaxed); }

void gemm_bf16(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
               const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0 || !cpu_has_avx512_bf16()) return gemm_bf16_emulated(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  const GemmGroup<float> g{M, N, K, A, lda, B, ldb, C, ldc};
  gemm_bf16_avx512(ta, tb, alpha, beta, &g, 1);
}

void gemm_bf16_a16(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t* A, int64_t lda,
                   const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0 || !cpu_has_avx512_bf16()) {  // widen A (exactly) and take the emulated path
    const int64_t rows = ta ? K : M, cols = ta ? M : K;
    std::vector<float> a(size_t(rows * cols));
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) a[size_t(i * cols + j)] = bf16_value(A[i * lda + j]);
    return gemm_bf16_emulated(ta, tb, M, N, K, alpha, a.data(), cols, B, ldb, beta, C, ldc);
  }
  const GemmGroup<float> g{M, N, K, nullptr, lda, B, ldb, C, ldc};
  gemm_bf16_avx512(ta, tb, alpha, beta, &g, 1, A);
}

void gemm_bf16_rows(bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                    int64_t ldb, const GemmRowsFn& rows) {
  if (M == 0 || N == 0) return;
  if (K > 0 && cpu_has_avx512_bf16()) return gemm_bf16_rows_avx512(tb, M, N, K, A, lda, B, ldb, rows);
  // Emulated: the whole product (gemm_bf16's bits), then its blocks of rows, shared out as natively.
  std::vector<float> c(size_t(M * N));
  gemm_bf16(false, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, c.data(), N);
  const int64_t blocks = (M + kRowsMC - 1) / kRowsMC;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t b = 0; b < blocks; ++b)
    rows(b * kRowsMC, std::min(kRowsMC, M - b * kRowsMC), c.data() + b * kRowsMC * N, N);
}

void gemm_bf16_grouped(bool ta, bool tb, float alpha, float beta, const GemmGroup<float>* probs, int64_t n) {
  if (!cpu_has_avx512_bf16()) {
    for (int64_t p = 0; p < n; ++p) {
      const GemmGroup<float>& g = probs[p];
      gemm_bf16_emulated(ta, tb, g.M, g.N, g.K, alpha, g.A, g.lda, g.B, g.ldb, beta, g.C, g.ldc);
    }
    return;
  }
  gemm_bf16_avx512(ta, tb, alpha, beta, probs, n);
}

}  // namespace tv::cpu
