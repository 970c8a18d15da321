// Streaming kernels for q8 weights (core/dtype.h BlockQ8: 32 int8 and one fp32 scale per block along the
// input dimension) with fp32 activations: each weight is widened to fp32 as scale * q (exactly the value
// dequantise_q8 gives) and multiplied into fp32 sums. The activations are not quantised: decoding reads
// every weight once, so the time goes into streaming the blocks, and AVX512-F has the throughput to turn
// them into fp32 at that rate; VNNI's int8 dot products would need int8 activations and add their error.
#include <immintrin.h>

#include "core/tensor.h"
#include "kernels/cpu/weight_formats.h"

namespace tv::cpu {
namespace {

struct Q8Fmt {
  using W = BlockQ8;
  static int64_t row_elems(int64_t in) { return in / kQ8Block; }
  static float at(const BlockQ8* row, int64_t k) { return row[k / kQ8Block].scale * float(row[k / kQ8Block].q[k % kQ8Block]); }
};

void rows_scalar(float* y, int64_t ldy, const float* x, int64_t N, int64_t in, const void* w, int64_t o0, int64_t o1) {
  const BlockQ8* base = static_cast<const BlockQ8*>(w);
  for (int64_t o = o0; o < o1; ++o)
    for (int64_t n = 0; n < N; ++n) {
      float s = 0;
      for (int64_t k = 0; k < in; ++k) s += x[n * in + k] * Q8Fmt::at(base + o * (in / kQ8Block), k);
      y[n * ldy + o] = s;
    }
}

void to_f32(float* dst, const void* w, int64_t in, int64_t o0, int64_t o1) {
  dequantise_q8(dst, static_cast<const BlockQ8*>(w) + o0 * (in / kQ8Block), (o1 - o0) * in);
}

namespace avx2 {
struct Isa {
  using V = __m256;
  static constexpr int64_t L = 8;
  static V zero() { return _mm256_setzero_ps(); }
  static V loadx(const float* p) { return _mm256_loadu_ps(p); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static float sum(V v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};
struct Fmt : Q8Fmt {
  static Isa::V loadw(const BlockQ8* row, int64_t k) {
    const BlockQ8& b = row[k / kQ8Block];
    const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b.q + k % kQ8Block));
    return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), _mm256_set1_ps(b.scale));
  }
};
#include "kernels/cpu/weight_rows.inc"
}  // namespace avx2

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl")
// GCC 12's _mm512_reduce_add_ps trips a false -W(maybe-)uninitialized on its undefined pass-through.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
namespace avx512 {
struct Isa {
  using V = __m512;
  static constexpr int64_t L = 16;
  static V zero() { return _mm512_setzero_ps(); }
  static V loadx(const float* p) { return _mm512_loadu_ps(p); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static float sum(V v) { return _mm512_reduce_add_ps(v); }
};
struct Fmt : Q8Fmt {
  static Isa::V loadw(const BlockQ8* row, int64_t k) {
    const BlockQ8& b = row[k / kQ8Block];
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.q + k % kQ8Block));
    return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)), _mm512_set1_ps(b.scale));
  }
};
#include "kernels/cpu/weight_rows.inc"
}  // namespace avx512
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif

}  // namespace

const WeightFormatRows& q8_weight_rows() {
  static const WeightFormatRows r{&rows_scalar, &avx2::rows_kernel, &avx512::rows_kernel, &to_f32};
  return r;
}

}  // namespace tv::cpu
