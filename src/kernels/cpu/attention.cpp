// Tiled ("flash") attention on the CPU.
//
// Every mask this engine uses gives each query row one contiguous range of visible keys
// [lo(i), hi(i)), and both ends never decrease with i:
//   causal:      [chunk start or 0, pos + 1)
//   non-causal:  [chunk start or 0, chunk end or Sk)
// with pos = q_offset + i and the chunk the one holding pos, clipped to [0, Sk). The kernels work
// on those ranges: fully masked key blocks are never visited, and inside a block the tile products
// skip the masked corner (in strips of 16 columns and blocks of a few rows).
//
// Scores are held transposed, keys down and queries across (S^T = K Q^T): key and value rows are read
// in place, only the query tile is transposed, and the softmax statistics of a tile's queries are
// vectors updated key by key.
// Forward: one work item per (batch, head, query tile). Query tiles never straddle a chunk
// boundary, so a chunked layer visits only the keys of its own chunk; key blocks are walked from
// lo(first row) to hi(last row) with an online softmax (running max m, running sum l, unnormalised
// output). Memory: per-thread tile buffers only.
// Backward: one work item per (batch, kv head); it loops over the query heads of its group, so the
// dK and dV rows it accumulates (and the dQ rows) belong to it alone: no atomics, no reduction.
// Probabilities are recomputed from the saved lse: P = exp(scale * q.k - lse). The item works on
// contiguous copies of its K, V, dK, dV rows and of each tile's Q, dO, dQ rows (see there why).
// The softmax passes of both run on whole vectors of queries with lane masks (see "vectors of
// queries" below).
// Causal layers with chunks of exactly one tile (the training shapes) take a specialised path, same
// bits (see "chunk-aligned causal layers"): one item per (batch, kv head, chunk) in both directions.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include <immintrin.h>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/grain.h"
#include "kernels/cpu/vec.h"
#include "kernels/cpu/vec_exp.h"

namespace tv::cpu {
namespace {

constexpr int64_t kTileQ = 64;  // query rows per tile
constexpr int64_t kTileK = 64;  // keys per block

// A half-open index range; used per row for the visible keys (or, per key, the queries that see it).
struct Range {
  int64_t lo, hi;
};

// ---- tile products -------------------------------------------------------------------------------
// C[i, n] (+)= sum_k A(i, k) * B[k, n], with A(i, k) = A[i * lda + k], or A[k * lda + i] when TransA.
// Every C element is summed in k order (vectorised across n, never along k), so no reassociation is
// needed and results do not depend on the build's vector width. A block of R rows x NV vectors of C
// stays in registers while k runs; GCC vector types (32 bytes: 8 floats or 4 doubles) make that
// explicit, where plain loops over a small accumulator array stayed mostly scalar.
//
// Two optional per-row descriptions of where the work is (both with ends nondecreasing in the row):
// - krange[i]: the k that matter for row i (the others multiply zeros); a block of rows sums over the
//   union of its rows' ranges. With Acc a block whose union is empty is left untouched.
// - cols[i]: the columns that row i needs; a strip of columns is computed only for the rows whose
//   range meets it (the other entries of C are left undefined: the caller masks them).
// Kept out of line: inlined into the kernels it lost registers to the code around it.
template <typename T, bool TransA, bool Acc, int R, int NV>
__attribute__((noinline)) void gemm_block(T* __restrict C, int64_t ldc, const T* __restrict A, int64_t lda,
                                          const T* __restrict B, int64_t ldb, int64_t i, int64_t n0, int64_t k0,
                                          int64_t k1) {
  constexpr int64_t L = 32 / sizeof(T);
  Vec<T> acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) {
      if (Acc)
        std::memcpy(&acc[r][v], C + (i + r) * ldc + n0 + v * L, sizeof(Vec<T>));
      else
        acc[r][v] = Vec<T>{};
    }
  for (int64_t k = k0; k < k1; ++k) {
    Vec<T> b[NV];
    for (int v = 0; v < NV; ++v) std::memcpy(&b[v], B + k * ldb + n0 + v * L, sizeof(Vec<T>));
    for (int r = 0; r < R; ++r) {
      const T a = TransA ? A[k * lda + i + r] : A[(i + r) * lda + k];
      for (int v = 0; v < NV; ++v) acc[r][v] += a * b[v];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) std::memcpy(C + (i + r) * ldc + n0 + v * L, &acc[r][v], sizeof(Vec<T>));
}

template <typename T, bool TransA, bool Acc>
struct TileGemm {
  T* C;
  int64_t ldc;
  const T* A;
  int64_t lda;
  const T* B;
  int64_t ldb;
  int64_t M, N, K;
  const Range* krange;  // may be null: all of [0, K)
  const Range* cols;    // may be null: every row needs every column

  // Rows of [0, M) whose column range meets [n0, n1): a contiguous run, by monotonicity.
  Range rows_for(int64_t n0, int64_t n1) const {
    if (!cols) return {0, M};
    int64_t a = 0, b = M;
    while (a < M && cols[a].hi <= n0) ++a;
    while (b > a && cols[b - 1].lo >= n1) --b;
    return {a, b};
  }
  Range k_for(int64_t i, int64_t r) const {
    if (!krange) return {0, K};
    return {krange[i].lo, krange[i + r - 1].hi};
  }

  template <int R, int NV>
  void block(int64_t i, int64_t n0) const {
    Range k = k_for(i, R);
    if (Acc && k.lo >= k.hi) return;
    gemm_block<T, TransA, Acc, R, NV>(C, ldc, A, lda, B, ldb, i, n0, k.lo, std::max(k.lo, k.hi));
  }

  template <int NV>
  void strip(int64_t n0) const {
    constexpr int64_t L = 32 / sizeof(T);
    constexpr int R = NV == 2 ? 6 : 8;  // 12 or 8 accumulators and the B vectors fit in 16 registers
    const Range rows = rows_for(n0, n0 + NV * L);
    int64_t i = rows.lo;
    for (; i + R <= rows.hi; i += R) block<R, NV>(i, n0);
    if (i + 4 <= rows.hi) block<4, NV>(i, n0), i += 4;
    if (i + 2 <= rows.hi) block<2, NV>(i, n0), i += 2;
    if (i < rows.hi) block<1, NV>(i, n0), ++i;
  }

  void run() const {
    constexpr int64_t L = 32 / sizeof(T);
    int64_t n0 = 0;
    for (; n0 + 2 * L <= N; n0 += 2 * L) strip<2>(n0);
    if (n0 + L <= N) strip<1>(n0), n0 += L;
    if (n0 == N) return;
    const Range rows = rows_for(n0, N);
    for (int64_t i = rows.lo; i < rows.hi; ++i) {
      const Range k = k_for(i, 1);
      T* c = C + i * ldc;
      if (!Acc)
        for (int64_t n = n0; n < N; ++n) c[n] = 0;
      for (int64_t kk = k.lo; kk < k.hi; ++kk) {
        const T a = TransA ? A[kk * lda + i] : A[i * lda + kk];
        for (int64_t n = n0; n < N; ++n) c[n] += a * B[kk * ldb + n];
      }
    }
  }
};

// C = A @ B over [0, K), only where cols says (the scores q.k and dO.v of a tile).
template <typename T>
void gemm_masked_cols(T* C, int64_t ldc, const T* A, int64_t lda, const T* B, int64_t ldb, int64_t M, int64_t N,
                      int64_t K, const Range* cols) {
  TileGemm<T, false, false>{C, ldc, A, lda, B, ldb, M, N, K, nullptr, cols}.run();
}
// C += op(A) @ B with per-row k ranges (P v, dS k, dS^T q, P^T dO).
template <typename T, bool TransA>
void gemm_acc_krange(T* C, int64_t ldc, const T* A, int64_t lda, const T* B, int64_t ldb, int64_t M, int64_t N,
                     int64_t K, const Range* krange) {
  TileGemm<T, TransA, true>{C, ldc, A, lda, B, ldb, M, N, K, krange, nullptr}.run();
}

// ---- masks ---------------------------------------------------------------------------------------

// Visible key range of the query at absolute position pos.
inline Range visible_keys(int64_t pos, int64_t Sk, int64_t chunk, bool causal) {
  int64_t lo = 0, hi = Sk;
  if (chunk > 0) {
    lo = (pos / chunk) * chunk;
    hi = lo + chunk;
  }
  if (causal) hi = std::min(hi, pos + 1);
  return {std::min(lo, Sk), std::min(hi, Sk)};
}

// Query tiles [start, end): at most kTileQ rows, never across a chunk boundary.
std::vector<Range> query_tiles(int64_t Sq, int64_t q_offset, int64_t chunk) {
  std::vector<Range> tiles;
  for (int64_t i0 = 0; i0 < Sq;) {
    int64_t i1 = std::min(Sq, i0 + kTileQ);
    if (chunk > 0) i1 = std::min(i1, ((q_offset + i0) / chunk + 1) * chunk - q_offset);
    tiles.push_back({i0, i1});
    i0 = i1;
  }
  return tiles;
}

// Row ranges of a tile (absolute key indices) clipped to the key block [j0, j0 + N), made relative.
void block_ranges(const Range* rows, int64_t M, int64_t j0, int64_t N, Range* out) {
  for (int64_t i = 0; i < M; ++i)
    out[i] = {std::clamp(rows[i].lo - j0, int64_t(0), N), std::clamp(rows[i].hi - j0, int64_t(0), N)};
}

// For each key j < N of a block, the tile rows that see it, from the rows' key ranges (relative to
// the block, ends nondecreasing): rows i with lo(i) <= j < hi(i), a contiguous run.
void rows_seeing_keys(const Range* rel, int64_t M, int64_t N, Range* out) {
  int64_t first = 0, last = 0;  // first row with hi > j; one past the last row with lo <= j
  for (int64_t j = 0; j < N; ++j) {
    while (first < M && rel[first].hi <= j) ++first;
    while (last < M && rel[last].lo <= j) ++last;
    out[j] = {first, std::max(first, last)};
  }
}

// ---- row helpers ---------------------------------------------------------------------------------

// Dot product in 8 interleaved partial sums (vectorisable without reassociation).
template <typename T>
T row_dot(const T* x, const T* y, int64_t n) {
  T part[8] = {};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int w = 0; w < 8; ++w) part[w] += x[j + w] * y[j + w];
  T s = 0;
  for (int w = 0; w < 8; ++w) s += part[w];
  for (; j < n; ++j) s += x[j] * y[j];
  return s;
}

// ---- vectors of queries ---------------------------------------------------------------------------
// The softmax passes run on whole vectors of L queries (lanes), one key row at a time; the lanes of
// a vector that do not see the key are masked by lane index (a select, so garbage or NaN in masked
// lanes never leaks). Variable-length scalar loops over [lo, hi) spent most of their time in
// remainders and were not vectorised at all for the max (a float compare GCC will not if-convert).
// Lane i of vector c holds query c * L + i; true where lo <= query < hi.
template <typename T>
inline auto lanes_in(int64_t c, int64_t lo, int64_t hi) {
  constexpr int64_t L = 32 / sizeof(T);
  Vec<T> lane;  // 0, 1, ..., L - 1 (folded to a constant)
  for (int64_t w = 0; w < L; ++w) lane[w] = T(w);
  return (lane >= splat(T(lo - c * L))) & (lane < splat(T(hi - c * L)));
}
// n rows of Dh values, ld apart, copied between a strided view and a contiguous buffer.
// Whole vectors inline where Dh allows: a memcpy call per 128-byte row cost more than the copy.
template <typename T>
void copy_rows(T* __restrict dst, int64_t ldd, const T* __restrict src, int64_t lds, int64_t n, int64_t Dh) {
  constexpr int64_t L = 32 / sizeof(T);
  if (Dh % L == 0) {
    for (int64_t i = 0; i < n; ++i)
      for (int64_t d = 0; d < Dh; d += L) {
        Vec<T> x = vload(src + i * lds + d);
        asm("" : "+x"(x));  // keeps GCC from turning the row back into a memcpy call
        vstore(dst + i * ldd + d, x);
      }
    return;
  }
  for (int64_t i = 0; i < n; ++i) std::memcpy(dst + i * ldd, src + i * lds, size_t(Dh) * sizeof(T));
}

// A backward unit's n rows of K and V (and of dK and dV, when wanted) into its contiguous buffers.
// A gradient's rows into their contiguous copy: its current values to accumulate onto, or zeros when
// the caller's buffer is to be overwritten (then it is never read).
template <typename T>
void copy_grad_in(T* dst, const T* src, int64_t ld, int64_t n, int64_t Dh, bool overwrite) {
  if (overwrite)
    std::fill(dst, dst + n * Dh, T(0));
  else
    copy_rows(dst, Dh, src, ld, n, Dh);
}

template <typename T>
void copy_kv_in(T* kc, T* vc, T* dkc, T* dvc, const T* k, const T* v, const T* dk, const T* dv, int64_t row0,
                int64_t ld, int64_t n, int64_t Dh, bool overwrite) {
  copy_rows(kc, Dh, k + row0, ld, n, Dh);
  copy_rows(vc, Dh, v + row0, ld, n, Dh);
  if (dk) copy_grad_in(dkc, dk + row0, ld, n, Dh, overwrite);
  if (dv) copy_grad_in(dvc, dv + row0, ld, n, Dh, overwrite);
}

// The temperature gradient's sum of dS * S: one float partial per query lane within a key block, added
// up in double after each block (a float sum over a whole unit loses digits at long sequences).
template <typename T>
struct ScaleGradSum {
  Vec<T> lanes{};
  double total = 0;
  void flush() {
    for (int64_t w = 0; w < int64_t(32 / sizeof(T)); ++w) total += double(lanes[w]);
    lanes = Vec<T>{};
  }
};

// Rows (of Dh values, ld apart) of up to four arrays, fetched into the cache a few at a time while a
// tile computes: the rows lie 1-2 KiB apart, beyond the hardware prefetcher, and issued all at once
// the fetches stall the core on its miss buffers.
template <typename T>
struct RowPrefetch {
  const T* p[4];
  int64_t ld[4];
  bool write[4];
  int n = 0;
  int64_t rows = 0, Dh = 0, done = 0;
  void add(const T* a, int64_t lda, bool w) { p[n] = a, ld[n] = lda, write[n] = w, ++n; }
  void until(int64_t r) {  // fetch rows [done, r)
    for (; done < std::min(r, rows); ++done)
      for (int s = 0; s < n; ++s)
        for (int64_t off = 0; off < Dh * int64_t(sizeof(T)); off += 64) {
          const char* a = reinterpret_cast<const char*>(p[s] + done * ld[s]) + off;
          if (write[s])
            __builtin_prefetch(a, 1, 3);
          else
            __builtin_prefetch(a, 0, 3);
        }
  }
};

// The 8 x 8 transpose of 8 rows of floats, in place.
inline void transpose8x8(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int w = 0; w < 8; w += 2) {
    t[w] = _mm256_unpacklo_ps(r[w], r[w + 1]);      // rows w, w+1 interleaved: columns 0, 1 | 4, 5
    t[w + 1] = _mm256_unpackhi_ps(r[w], r[w + 1]);  // columns 2, 3 | 6, 7
  }
  for (int w = 0; w < 8; w += 4) {
    u[w] = _mm256_shuffle_ps(t[w], t[w + 2], 0x44);  // column 0 | 4 of rows w..w+3
    u[w + 1] = _mm256_shuffle_ps(t[w], t[w + 2], 0xEE);
    u[w + 2] = _mm256_shuffle_ps(t[w + 1], t[w + 3], 0x44);
    u[w + 3] = _mm256_shuffle_ps(t[w + 1], t[w + 3], 0xEE);
  }
  for (int w = 0; w < 4; ++w) {
    r[w] = _mm256_permute2f128_ps(u[w], u[w + 4], 0x20);
    r[w + 4] = _mm256_permute2f128_ps(u[w], u[w + 4], 0x31);
  }
}

// xt[d, i] = alpha * x[i, d] for the M rows of a query tile (rows ldx apart): the scores are formed
// as S^T = K @ Q^T, keys down and queries across, so softmax statistics run along vectors of queries
// and key and value rows are used in place, never copied.
template <typename T>
void transpose_tile(T* __restrict xt, const T* __restrict x, int64_t ldx, int64_t M, int64_t Dh, T alpha) {
  int64_t i0 = 0;
  if constexpr (std::is_same_v<T, float>) {
    // Blocks of 8 x 8 in registers: scalar stores 256 bytes apart cost far more than the shuffles.
    if (Dh % 8 == 0)
      for (; i0 + 8 <= M; i0 += 8)
        for (int64_t d = 0; d < Dh; d += 8) {
          __m256 r[8];
          for (int w = 0; w < 8; ++w) r[w] = vload(x + (i0 + w) * ldx + d) * alpha;
          transpose8x8(r);
          for (int w = 0; w < 8; ++w) vstore(xt + (d + w) * kTileQ + i0, Vec<float>(r[w]));
        }
  }
  for (int64_t i = i0; i < M; ++i)
    for (int64_t d = 0; d < Dh; ++d) xt[d * kTileQ + i] = x[i * ldx + d] * alpha;
}

// ---- chunk-aligned causal layers ------------------------------------------------------------------
// The training shapes: causal, chunks of exactly kTileQ, queries from position 0, whole chunks. Query
// tile c is then chunk c and sees key block c alone, query i (index in the chunk) key j iff j <= i: a
// single key block (no online softmax) with a known triangle (no range bookkeeping). A tile is worked
// in strips of two vectors of queries; strip n0 needs key rows [0, n0 + SW). Every sum runs in the same
// order as in the general path and masked terms are exact zeros, so the results are the same bits
// (d(scale) of the backward aside, see there).
constexpr int64_t kChunk = kTileQ;

inline bool chunk_aligned(int64_t Sq, int64_t Sk, int64_t q_offset, int64_t chunk, bool causal) {
  return causal && chunk == kChunk && q_offset == 0 && Sq == Sk && Sq % kChunk == 0;
}

// Per-row ranges of the triangle: keys [0, i] seen by query i, queries [j, kChunk) seeing key j.
struct ChunkRanges {
  Range keys_of_query[kChunk], queries_of_key[kChunk];
  ChunkRanges() {
    for (int64_t i = 0; i < kChunk; ++i) keys_of_query[i] = {0, i + 1}, queries_of_key[i] = {i, kChunk};
  }
};
const ChunkRanges kChunkRanges;

// Forward of one head on one chunk. qt: the queries transposed and scaled ([d][i], kTileQ apart); kc, vc:
// the chunk's key and value rows, ld apart. Writes the output rows (ldo apart) and lse (when not null).
template <typename T>
void fwd_chunk_tile(T* ob, int64_t ldo, T* lse, const T* qt, const T* kc, const T* vc, int64_t ld, int64_t Dh,
                    T* st, T* acc, RowPrefetch<T>& pf) {
  constexpr int64_t L = 32 / sizeof(T), SW = 2 * L;
  const T inf = std::numeric_limits<T>::infinity();
  for (int64_t n0 = 0; n0 < kChunk; n0 += SW) {
    const int64_t nk = n0 + SW, c0 = n0 / L;  // key rows of the strip; its first query vector
    TileGemm<T, false, false>{st + n0, kTileQ, kc, ld, qt + n0, kTileQ, nk, SW, Dh, nullptr, nullptr}.run();
    pf.until(nk);
    // Maxima over the visible keys (two partials per vector: shorter dependency chains; the max of
    // the same values in any order).
    Vec<T> mx[2][2];
    for (auto& x : mx) x[0] = x[1] = splat(-inf);
    for (int64_t j = 0; j < n0; ++j)
      for (int v = 0; v < 2; ++v) {
        const Vec<T> x = vload(st + j * kTileQ + n0 + v * L);
        mx[j & 1][v] = x > mx[j & 1][v] ? x : mx[j & 1][v];
      }
    for (int64_t j = n0; j < nk; ++j)
      for (int v = 0; v < 2; ++v) {
        Vec<T> x = vload(st + j * kTileQ + n0 + v * L);
        x = lanes_in<T>(c0 + v, j, kChunk) ? x : splat(-inf);
        mx[j & 1][v] = x > mx[j & 1][v] ? x : mx[j & 1][v];
      }
    Vec<T> m[2], lsum[2] = {};
    for (int v = 0; v < 2; ++v) m[v] = mx[1][v] > mx[0][v] ? mx[1][v] : mx[0][v];
    // P = exp(S - m), zeros where masked; sums in key order.
    for (int64_t j = 0; j < n0; ++j)
      for (int v = 0; v < 2; ++v) {
        T* sp = st + j * kTileQ + n0 + v * L;
        const Vec<T> p = vexp_lanes<T>(vload(sp) - m[v]);
        vstore(sp, p);
        lsum[v] += p;
      }
    for (int64_t j = n0; j < nk; ++j)
      for (int v = 0; v < 2; ++v) {
        T* sp = st + j * kTileQ + n0 + v * L;
        if ((c0 + v + 1) * L <= j) {
          vstore(sp, Vec<T>{});
          continue;
        }
        Vec<T> p = vexp_lanes<T>(vload(sp) - m[v]);
        p = lanes_in<T>(c0 + v, j, kChunk) ? p : Vec<T>{};
        vstore(sp, p);
        lsum[v] += p;
      }
    // O = P V for the strip's queries, each over keys [0, i] (the rest of a block's rows are zeros).
    TileGemm<T, true, false>{acc, Dh, st + n0, kTileQ, vc, ld, SW, Dh, nk, kChunkRanges.keys_of_query + n0,
                             nullptr}
        .run();
    for (int64_t r = 0; r < SW; ++r) {
      const T l = lsum[r / L][r % L], mr = m[r / L][r % L];
      const T inv = l > T(0) ? T(1) / l : T(0);
      T* o = ob + (n0 + r) * ldo;
      int64_t d = 0;
      for (; d + L <= Dh; d += L) vstore(o + d, vload(acc + r * Dh + d) * inv);
      for (; d < Dh; ++d) o[d] = acc[r * Dh + d] * inv;
      if (lse) lse[n0 + r] = l > T(0) ? mr + std::log(l) : -inf;
    }
  }
}

template <typename T>
void attention_fwd_chunked(T* out, T* lse, const T* q, const T* k, const T* v, const AttentionShape& s,
                           double scale) {
  const int64_t B = s.B, S = s.Sq, H = s.H, Hkv = s.Hkv, Dh = s.Dh;
  const int64_t rep = H / Hkv, ldq = H * Dh, ldk = Hkv * Dh, n_chunks = S / kChunk;
  const int64_t n_items = B * Hkv * n_chunks;
  const bool parallel = B * H * S * kChunk * Dh > kParallelGrain;
#pragma omp parallel if (parallel)
  {
    std::vector<T> qt(Dh * kTileQ), st(kChunk * kTileQ), acc(2 * 32 / sizeof(T) * Dh), kc(kChunk * Dh),
        vc(kChunk * Dh);
    // Rows of q and out of head h in the item's chunk; rows of k and v.
    auto q_rows = [&](int64_t item, int64_t h) {
      return ((item / n_chunks / Hkv * S + item % n_chunks * kChunk) * H + h) * Dh;
    };
    auto kv_rows = [&](int64_t item) {
      return ((item / n_chunks / Hkv * S + item % n_chunks * kChunk) * Hkv + item / n_chunks % Hkv) * Dh;
    };
#pragma omp for schedule(dynamic, 4)  // runs of items: the prefetch of item + 1 is mostly of use
    for (int64_t item = 0; item < n_items; ++item) {
      // One item per (batch, kv head, chunk): the chunk's keys and values copied once, for all the
      // query heads of the group.
      const int64_t c = item % n_chunks, bg = item / n_chunks, b = bg / Hkv, g = bg % Hkv, i0 = c * kChunk;
      copy_rows(kc.data(), Dh, k + kv_rows(item), ldk, kChunk, Dh);
      copy_rows(vc.data(), Dh, v + kv_rows(item), ldk, kChunk, Dh);
      for (int64_t h = g * rep; h < (g + 1) * rep; ++h) {
        // The rows are 1-2 KiB apart, too far for the hardware prefetcher: fetch the next head's (or
        // item's) rows while this one computes.
        RowPrefetch<T> pf;
        pf.rows = kChunk, pf.Dh = Dh;
        if (h + 1 < (g + 1) * rep) {
          pf.add(q + q_rows(item, h + 1), ldq, false);
          pf.add(out + q_rows(item, h + 1), ldq, true);
        } else if (item + 1 < n_items) {
          const int64_t h1 = (item + 1) / n_chunks % Hkv * rep;
          pf.add(q + q_rows(item + 1, h1), ldq, false);
          pf.add(out + q_rows(item + 1, h1), ldq, true);
          pf.add(k + kv_rows(item + 1), ldk, false);
          pf.add(v + kv_rows(item + 1), ldk, false);
        }
        transpose_tile(qt.data(), q + ((b * S + i0) * H + h) * Dh, ldq, kChunk, Dh, T(scale));
        fwd_chunk_tile(out + ((b * S + i0) * H + h) * Dh, ldq, lse ? lse + (b * H + h) * S + i0 : nullptr,
                       qt.data(), kc.data(), vc.data(), Dh, Dh, st.data(), acc.data(), pf);
      }
    }
  }
}

// Backward of one chunk for one kv head: a unit of its own, as the chunk's dK and dV rows receive
// contributions from the queries of that chunk alone (4x the units of the general path, for balance).
// dQ, dK and dV are the general path's bits; d(scale), when asked for (only NoPE layers ask, and they
// are not chunked), is summed in per-unit partials of another grouping: fp32 rounding differs.
template <typename T>
void attention_bwd_chunked(T* dq, T* dk, T* dv, double* dscale, const T* dout, const T* q, const T* k, const T* v,
                           const T* out, const T* lse, const AttentionShape& s, double scale, bool overwrite) {
  const int64_t B = s.B, S = s.Sq, H = s.H, Hkv = s.Hkv, Dh = s.Dh;
  const int64_t rep = H / Hkv, ldq = H * Dh, ldk = Hkv * Dh, n_chunks = S / kChunk;
  const int64_t n_units = B * Hkv * n_chunks;
  const T sc_t = T(scale);
  std::vector<double> dscale_of_unit(n_units, 0.0);  // summed in unit order afterwards: deterministic
  const bool parallel = B * H * S * kChunk * Dh > kParallelGrain;
  constexpr int64_t L = 32 / sizeof(T), SW = 2 * L;

#pragma omp parallel if (parallel)
  {
    // As in the general backward: transposed tiles [key j][query i], contiguous copies of the rows.
    std::vector<T> qt(Dh * kTileQ), dot(Dh * kTileQ), st(kChunk * kTileQ), pt(kChunk * kTileQ),
        dst(kChunk * kTileQ), lrow(kTileQ), drow(kTileQ);
    std::vector<T> kc(kChunk * Dh), vc(kChunk * Dh), dkc(dk ? kChunk * Dh : 0), dvc(dv ? kChunk * Dh : 0),
        qc(kTileQ * Dh), doc(kTileQ * Dh), dqc(dq ? kTileQ * Dh : 0);
    // First row of the unit's chunk in q/dout/out/dq (head h) and in k/v/dk/dv.
    auto q_rows = [&](int64_t unit, int64_t h) {
      return ((unit / n_chunks / Hkv * S + unit % n_chunks * kChunk) * H + h) * Dh;
    };
    auto kv_rows = [&](int64_t unit) {
      return ((unit / n_chunks / Hkv * S + unit % n_chunks * kChunk) * Hkv + unit / n_chunks % Hkv) * Dh;
    };
#pragma omp for schedule(dynamic, 1)
    for (int64_t unit = 0; unit < n_units; ++unit) {
      const int64_t c = unit % n_chunks, bg = unit / n_chunks, b = bg / Hkv, g = bg % Hkv, i0 = c * kChunk;
      const int64_t kv0 = kv_rows(unit);
      copy_kv_in(kc.data(), vc.data(), dkc.data(), dvc.data(), k, v, dk, dv, kv0, ldk, kChunk, Dh, overwrite);
      ScaleGradSum<T> dscale_sum;
      for (int64_t h = g * rep; h < (g + 1) * rep; ++h) {
        const int64_t row0 = q_rows(unit, h) / Dh;  // [b, i0, h] row of q, out, dout, dq
        copy_rows(qc.data(), Dh, q + row0 * Dh, ldq, kChunk, Dh);
        copy_rows(doc.data(), Dh, dout + row0 * Dh, ldq, kChunk, Dh);
        if (dq) copy_grad_in(dqc.data(), dq + row0 * Dh, ldq, kChunk, Dh, overwrite);
        transpose_tile(qt.data(), qc.data(), Dh, kChunk, Dh, T(1));
        transpose_tile(dot.data(), doc.data(), Dh, kChunk, Dh, T(1));
        for (int64_t i = 0; i < kChunk; ++i) {
          drow[i] = row_dot(doc.data() + i * Dh, out + (row0 + i * H) * Dh, Dh);  // D_i = rowsum(dO * O)
          lrow[i] = lse[(b * H + h) * S + i0 + i];
        }
        for (int64_t n0 = 0; n0 < kChunk; n0 += SW) {
          const int64_t nk = n0 + SW, c0 = n0 / L;
          TileGemm<T, false, false>{st.data() + n0, kTileQ, kc.data(), Dh, qt.data() + n0, kTileQ, nk, SW, Dh,
                                    nullptr, nullptr}
              .run();
          TileGemm<T, false, false>{dst.data() + n0, kTileQ, vc.data(), Dh, dot.data() + n0, kTileQ, nk, SW, Dh,
                                    nullptr, nullptr}
              .run();  // dP^T
          // P = exp(scale * S - lse) and dS = P * (dP - D), zeros where masked (as in the general path).
          for (int64_t j = 0; j < nk; ++j)
            for (int64_t cv = c0; cv < c0 + 2; ++cv) {
              T* prow = pt.data() + j * kTileQ + cv * L;
              T* dsrow = dst.data() + j * kTileQ + cv * L;
              if ((cv + 1) * L <= j) {
                vstore(prow, Vec<T>{});
                vstore(dsrow, Vec<T>{});
                continue;
              }
              Vec<T> sv = vload(st.data() + j * kTileQ + cv * L);
              Vec<T> p = vexp_lanes<T>(sc_t * sv - vload(lrow.data() + cv * L));
              Vec<T> ds = p * (vload(dsrow) - vload(drow.data() + cv * L));
              if (cv * L < j) {
                const auto vis = lanes_in<T>(cv, j, kChunk);
                p = vis ? p : Vec<T>{};
                ds = vis ? ds : Vec<T>{};
                sv = vis ? sv : Vec<T>{};
              }
              if (dscale) dscale_sum.lanes += ds * sv;
              vstore(prow, p);
              vstore(dsrow, ds * sc_t);
            }
          dscale_sum.flush();
          // Below the strip's key rows every entry is masked: zeros for the whole-tile products.
          for (int64_t j = nk; j < kChunk; ++j)
            for (int64_t cv = c0; cv < c0 + 2; ++cv) {
              vstore(pt.data() + j * kTileQ + cv * L, Vec<T>{});
              vstore(dst.data() + j * kTileQ + cv * L, Vec<T>{});
            }
        }
        const Range* kq = kChunkRanges.keys_of_query;
        const Range* qk = kChunkRanges.queries_of_key;
        if (dq)
          TileGemm<T, true, true>{dqc.data(), Dh, dst.data(), kTileQ, kc.data(), Dh, kChunk, Dh, kChunk, kq, nullptr}
              .run();
        if (dk)
          TileGemm<T, false, true>{dkc.data(), Dh, dst.data(), kTileQ, qc.data(), Dh, kChunk, Dh, kChunk, qk,
                                   nullptr}
              .run();
        if (dv)
          TileGemm<T, false, true>{dvc.data(), Dh, pt.data(), kTileQ, doc.data(), Dh, kChunk, Dh, kChunk, qk,
                                   nullptr}
              .run();
        if (dq) copy_rows(dq + row0 * Dh, ldq, dqc.data(), Dh, kChunk, Dh);
      }
      if (dk) copy_rows(dk + kv0, ldk, dkc.data(), Dh, kChunk, Dh);
      if (dv) copy_rows(dv + kv0, ldk, dvc.data(), Dh, kChunk, Dh);
      dscale_sum.flush();
      dscale_of_unit[unit] = dscale_sum.total;
    }
  }
  if (dscale)
    for (double x : dscale_of_unit) *dscale += x;
}

}  // namespace

template <typename T>
void attention_fwd(T* out, T* lse, const T* q, const T* k, const T* v, const AttentionShape& s, double scale,
                   int64_t q_offset, int64_t chunk_size, bool causal) {
  if (chunk_aligned(s.Sq, s.Sk, q_offset, chunk_size, causal))
    return attention_fwd_chunked(out, lse, q, k, v, s, scale);
  const int64_t B = s.B, Sq = s.Sq, Sk = s.Sk, H = s.H, Hkv = s.Hkv, Dh = s.Dh;
  const int64_t rep = H / Hkv, ldq = H * Dh, ldk = Hkv * Dh;
  const auto tiles = query_tiles(Sq, q_offset, chunk_size);
  const int64_t n_tiles = int64_t(tiles.size()), n_items = B * H * n_tiles;
  const T inf = std::numeric_limits<T>::infinity();
  const bool parallel = B * H * Sq * Sk * Dh > kParallelGrain;
  constexpr int64_t L = 32 / sizeof(T);

#pragma omp parallel if (parallel)
  {
    // st: scores, then probabilities, transposed: st[j * kTileQ + i] for key j, query i.
    std::vector<T> qt(Dh * kTileQ), st(kTileK * kTileQ), acc(kTileQ * Dh), m(kTileQ), l(kTileQ), mx(kTileQ),
        alpha(kTileQ), lsum(kTileQ);
    std::vector<Range> rows(kTileQ), rel(kTileQ), seen_by(kTileK);
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < n_items; ++item) {
      // Largest tiles (most keys, for causal masks the last ones) first: better load balance.
      const int64_t t = n_tiles - 1 - item % n_tiles, bh = item / n_tiles, b = bh / H, h = bh % H, g = h / rep;
      const int64_t i0 = tiles[t].lo, M = tiles[t].hi - i0, MV = (M + L - 1) / L;
      const T* kb = k + (b * Sk * Hkv + g) * Dh;
      const T* vb = v + (b * Sk * Hkv + g) * Dh;
      transpose_tile(qt.data(), q + ((b * Sq + i0) * H + h) * Dh, ldq, M, Dh, T(scale));
      for (int64_t i = 0; i < M; ++i) {
        rows[i] = visible_keys(q_offset + i0 + i, Sk, chunk_size, causal);
        m[i] = -inf;
        l[i] = 0;
      }
      std::fill(acc.begin(), acc.begin() + M * Dh, T(0));
      const int64_t jlo = rows[0].lo, jhi = rows[M - 1].hi;
      for (int64_t j0 = jlo; j0 < jhi; j0 += kTileK) {
        const int64_t N = std::min(kTileK, jhi - j0);
        block_ranges(rows.data(), M, j0, N, rel.data());
        rows_seeing_keys(rel.data(), M, N, seen_by.data());
        gemm_masked_cols(st.data(), kTileQ, kb + j0 * ldk, ldk, qt.data(), kTileQ, N, M, Dh, seen_by.data());
        // Online softmax, one query per lane: block maxima, rescale factors, then exponentials and
        // their sums in one pass. P entries no query of the row sees are stored as zeros: the P v
        // product sums a block of rows over the union of their key ranges.
        for (int64_t c = 0; c < MV; ++c) vstore(mx.data() + c * L, splat(-inf));
        for (int64_t j = 0; j < N; ++j) {
          const T* srow = st.data() + j * kTileQ;
          const int64_t a = seen_by[j].lo, e = seen_by[j].hi;
          for (int64_t c = a / L; c * L < e; ++c) {
            Vec<T> x = vload(srow + c * L);
            if (c * L < a || (c + 1) * L > e) x = lanes_in<T>(c, a, e) ? x : splat(-inf);
            const Vec<T> old = vload(mx.data() + c * L);
            vstore(mx.data() + c * L, x > old ? x : old);
          }
        }
        for (int64_t c = 0; c < MV; ++c) {
          const Vec<T> mold = vload(m.data() + c * L), mcur = vload(mx.data() + c * L);
          const Vec<T> mnew = mcur > mold ? mcur : mold;
          // 0 on the first visible block; 1 (not exp(nan)) while a query has seen nothing.
          vstore(alpha.data() + c * L, mnew == splat(-inf) ? splat(T(1)) : vexp_lanes<T>(mold - mnew));
          vstore(m.data() + c * L, mnew);
          vstore(lsum.data() + c * L, Vec<T>{});
        }
        for (int64_t j = 0; j < N; ++j) {
          T* srow = st.data() + j * kTileQ;
          const int64_t a = seen_by[j].lo, e = seen_by[j].hi;
          for (int64_t c = 0; c < MV; ++c) {
            if (c * L >= e || (c + 1) * L <= a) {
              vstore(srow + c * L, Vec<T>{});
              continue;
            }
            Vec<T> p = vexp_lanes<T>(vload(srow + c * L) - vload(m.data() + c * L));
            if (c * L < a || (c + 1) * L > e) p = lanes_in<T>(c, a, e) ? p : Vec<T>{};
            vstore(srow + c * L, p);
            vstore(lsum.data() + c * L, vload(lsum.data() + c * L) + p);
          }
        }
        for (int64_t i = 0; i < M; ++i) {
          l[i] = l[i] * alpha[i] + lsum[i];
          if (alpha[i] != T(1))
            for (int64_t d = 0; d < Dh; ++d) acc[i * Dh + d] *= alpha[i];
        }
        gemm_acc_krange<T, true>(acc.data(), Dh, st.data(), kTileQ, vb + j0 * ldk, ldk, M, Dh, N, rel.data());
      }
      T* ob = out + ((b * Sq + i0) * H + h) * Dh;
      for (int64_t i = 0; i < M; ++i) {
        // A row that sees no key outputs zeros (and lse = -inf), not 0/0.
        const T inv = l[i] > T(0) ? T(1) / l[i] : T(0);
        for (int64_t d = 0; d < Dh; ++d) ob[i * ldq + d] = acc[i * Dh + d] * inv;
        if (lse) lse[(b * H + h) * Sq + i0 + i] = l[i] > T(0) ? m[i] + std::log(l[i]) : -inf;
      }
    }
  }
}

template <typename T>
void attention_bwd(T* dq, T* dk, T* dv, double* dscale, const T* dout, const T* q, const T* k, const T* v,
                   const T* out, const T* lse, const AttentionShape& s, double scale, int64_t q_offset,
                   int64_t chunk_size, bool causal, bool overwrite) {
  if (!dq && !dk && !dv && !dscale) return;
  if (chunk_aligned(s.Sq, s.Sk, q_offset, chunk_size, causal))
    return attention_bwd_chunked(dq, dk, dv, dscale, dout, q, k, v, out, lse, s, scale, overwrite);
  const int64_t B = s.B, Sq = s.Sq, Sk = s.Sk, H = s.H, Hkv = s.Hkv, Dh = s.Dh;
  const int64_t rep = H / Hkv, ldq = H * Dh, ldk = Hkv * Dh;
  const auto tiles = query_tiles(Sq, q_offset, chunk_size);
  const int64_t n_units = B * Hkv;
  const T sc_t = T(scale);
  std::vector<double> dscale_of_unit(n_units, 0.0);  // summed in unit order afterwards: deterministic
  const bool parallel = B * H * Sq * Sk * Dh > kParallelGrain;
  constexpr int64_t L = 32 / sizeof(T);

#pragma omp parallel if (parallel)
  {
    // Transposed like the forward: [key j][query i], kTileQ apart.
    std::vector<T> qt(Dh * kTileQ), dot(Dh * kTileQ), st(kTileK * kTileQ), pt(kTileK * kTileQ),
        dst(kTileK * kTileQ), lrow(kTileQ), drow(kTileQ);
    // Contiguous copies ([row][Dh]) of the unit's K, V, dK, dV and of a tile's Q, dO, dQ. In place,
    // rows lie 1-2 KiB apart and the few L1 sets they map to thrash across the five tile products.
    std::vector<T> kc(Sk * Dh), vc(Sk * Dh), dkc(dk ? Sk * Dh : 0), dvc(dv ? Sk * Dh : 0), qc(kTileQ * Dh),
        doc(kTileQ * Dh), dqc(dq ? kTileQ * Dh : 0);
    std::vector<Range> rows(kTileQ), rel(kTileQ), seen_by(kTileK);
#pragma omp for schedule(dynamic, 1)
    for (int64_t unit = 0; unit < n_units; ++unit) {
      const int64_t b = unit / Hkv, g = unit % Hkv;
      const int64_t kv0 = (b * Sk * Hkv + g) * Dh;  // [b, 0, g] row of k, v, dk, dv
      copy_kv_in(kc.data(), vc.data(), dkc.data(), dvc.data(), k, v, dk, dv, kv0, ldk, Sk, Dh, overwrite);
      ScaleGradSum<T> dscale_sum;
      for (int64_t h = g * rep; h < (g + 1) * rep; ++h) {
        for (const Range& tile : tiles) {
          const int64_t i0 = tile.lo, M = tile.hi - i0, MV = (M + L - 1) / L;
          const int64_t row0 = (b * Sq + i0) * H + h;  // [b, i0, h] row of q, out, dout, dq
          copy_rows(qc.data(), Dh, q + row0 * Dh, ldq, M, Dh);
          copy_rows(doc.data(), Dh, dout + row0 * Dh, ldq, M, Dh);
          if (dq) copy_grad_in(dqc.data(), dq + row0 * Dh, ldq, M, Dh, overwrite);
          transpose_tile(qt.data(), qc.data(), Dh, M, Dh, T(1));
          transpose_tile(dot.data(), doc.data(), Dh, M, Dh, T(1));
          for (int64_t i = 0; i < M; ++i) {
            drow[i] = row_dot(doc.data() + i * Dh, out + (row0 + i * H) * Dh, Dh);  // D_i = rowsum(dO * O)
            lrow[i] = lse[(b * H + h) * Sq + i0 + i];
            rows[i] = visible_keys(q_offset + i0 + i, Sk, chunk_size, causal);
          }
          const int64_t jlo = rows[0].lo, jhi = rows[M - 1].hi;
          for (int64_t j0 = jlo; j0 < jhi; j0 += kTileK) {
            const int64_t N = std::min(kTileK, jhi - j0);
            block_ranges(rows.data(), M, j0, N, rel.data());
            rows_seeing_keys(rel.data(), M, N, seen_by.data());
            gemm_masked_cols(st.data(), kTileQ, kc.data() + j0 * Dh, Dh, qt.data(), kTileQ, N, M, Dh,
                             seen_by.data());
            gemm_masked_cols(dst.data(), kTileQ, vc.data() + j0 * Dh, Dh, dot.data(), kTileQ, N, M, Dh,
                             seen_by.data());  // dP^T
            // P = exp(scale * S - lse) and dS = P * (dP - D), in one pass over whole query vectors;
            // entries the query does not see are stored as zeros (the products below sum over
            // the union of a block of rows' ranges). dst then holds scale * dS, the gradient of
            // the raw products q.k.
            for (int64_t j = 0; j < N; ++j) {
              const int64_t a = seen_by[j].lo, e = seen_by[j].hi;
              const T* srow = st.data() + j * kTileQ;
              T* prow = pt.data() + j * kTileQ;
              T* dsrow = dst.data() + j * kTileQ;
              for (int64_t c = 0; c < MV; ++c) {
                if (c * L >= e || (c + 1) * L <= a) {
                  vstore(prow + c * L, Vec<T>{});
                  vstore(dsrow + c * L, Vec<T>{});
                  continue;
                }
                Vec<T> sv = vload(srow + c * L);
                Vec<T> p = vexp_lanes<T>(sc_t * sv - vload(lrow.data() + c * L));
                Vec<T> ds = p * (vload(dsrow + c * L) - vload(drow.data() + c * L));
                if (c * L < a || (c + 1) * L > e) {
                  const auto vis = lanes_in<T>(c, a, e);
                  p = vis ? p : Vec<T>{};
                  ds = vis ? ds : Vec<T>{};
                  sv = vis ? sv : Vec<T>{};
                }
                if (dscale) dscale_sum.lanes += ds * sv;
                vstore(prow + c * L, p);
                vstore(dsrow + c * L, ds * sc_t);
              }
            }
            dscale_sum.flush();
            if (dq)
              gemm_acc_krange<T, true>(dqc.data(), Dh, dst.data(), kTileQ, kc.data() + j0 * Dh, Dh, M, Dh, N,
                                       rel.data());
            if (dk)
              gemm_acc_krange<T, false>(dkc.data() + j0 * Dh, Dh, dst.data(), kTileQ, qc.data(), Dh, N, Dh, M,
                                        seen_by.data());
            if (dv)
              gemm_acc_krange<T, false>(dvc.data() + j0 * Dh, Dh, pt.data(), kTileQ, doc.data(), Dh, N, Dh, M,
                                        seen_by.data());
          }
          if (dq) copy_rows(dq + row0 * Dh, ldq, dqc.data(), Dh, M, Dh);
        }
      }
      if (dk) copy_rows(dk + kv0, ldk, dkc.data(), Dh, Sk, Dh);
      if (dv) copy_rows(dv + kv0, ldk, dvc.data(), Dh, Sk, Dh);
      dscale_sum.flush();
      dscale_of_unit[unit] = dscale_sum.total;
    }
  }
  if (dscale)
    for (double x : dscale_of_unit) *dscale += x;
}

template void attention_fwd<float>(float*, float*, const float*, const float*, const float*, const AttentionShape&,
                                   double, int64_t, int64_t, bool);
template void attention_fwd<double>(double*, double*, const double*, const double*, const double*,
                                    const AttentionShape&, double, int64_t, int64_t, bool);
template void attention_bwd<float>(float*, float*, float*, double*, const float*, const float*, const float*,
                                   const float*, const float*, const float*, const AttentionShape&, double, int64_t,
                                   int64_t, bool, bool);
template void attention_bwd<double>(double*, double*, double*, double*, const double*, const double*, const double*,
                                    const double*, const double*, const double*, const AttentionShape&, double,
                                    int64_t, int64_t, bool, bool);

}  // namespace tv::cpu
