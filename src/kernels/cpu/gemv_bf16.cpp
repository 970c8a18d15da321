// Streaming kernels for bf16 weights with fp32 activations: each weight is widened to fp32 (exact: a
// shift) and multiplied into fp32 sums, so the result is the fp32 product with the rounded weights. The
// activations are not rounded to bf16: VDPBF16PS would need that, and decoding is bound by streaming the
// weights, not by the multiplies, which AVX512-F keeps up with.
#include <immintrin.h>

#include "kernels/cpu/bf16.h"
#include "kernels/cpu/weight_formats.h"

namespace tv::cpu {
namespace {

struct Bf16Fmt {
  using W = uint16_t;
  static int64_t row_elems(int64_t in) { return in; }
  static float at(const uint16_t* row, int64_t k) { return bf16_value(row[k]); }
};

void rows_scalar(float* y, int64_t ldy, const float* x, int64_t N, int64_t in, const void* w, int64_t o0, int64_t o1) {
  const uint16_t* base = static_cast<const uint16_t*>(w);
  for (int64_t o = o0; o < o1; ++o)
    for (int64_t n = 0; n < N; ++n) {
      float s = 0;
      for (int64_t k = 0; k < in; ++k) s += x[n * in + k] * bf16_value(base[o * in + k]);
      y[n * ldy + o] = s;
    }
}

void to_f32(float* dst, const void* w, int64_t in, int64_t o0, int64_t o1) {
  const uint16_t* src = static_cast<const uint16_t*>(w) + o0 * in;
  const int64_t n = (o1 - o0) * in;
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_value(src[i]);
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
struct Fmt : Bf16Fmt {
  static Isa::V loadw(const uint16_t* row, int64_t k) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + k));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
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
struct Fmt : Bf16Fmt {
  static Isa::V loadw(const uint16_t* row, int64_t k) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + k));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
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

const WeightFormatRows& bf16_weight_rows() {
  static const WeightFormatRows r{&rows_scalar, &avx2::rows_kernel, &avx512::rows_kernel, &to_f32};
  return r;
}

}  // namespace tv::cpu
