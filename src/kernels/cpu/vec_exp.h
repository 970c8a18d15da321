// exp() that the compiler can vectorise: plain arithmetic, fused multiply-adds and integer bit moves, no
// library call, so loops over rows of scores or logits become SIMD code, where libm's expf would be one
// scalar call per element.
// Float: x is clamped to [-88, 88.3], reduced to r = x - n ln2 with |r| <= ln2/2, exp(r) from a minimax
// polynomial, then scaled by 2^n through the exponent bits. At most 1.03 ulp from the exact value for
// every float in [-87, 88]; exactly 0 for x below about -87.7 (-inf, the masked case, included); NaN
// stays NaN.
// Double: std::exp (double kernels exist for gradient checks, where accuracy matters, not speed).
#pragma once
#include <bit>
#include <cmath>
#include <cstdint>

namespace tv::cpu {

// a * b + c with one rounding (the build has FMA: -mfma), on a float or a 32-byte float vector. The
// build keeps -ffp-contract=off so that plain expressions round as written; the exp below asks for
// its fused steps explicitly, in both forms alike, so the two agree bit for bit.
inline float fmadd(float a, float b, float c) { return __builtin_fmaf(a, b, c); }
typedef float ExpVec8 __attribute__((vector_size(32)));
inline ExpVec8 fmadd(ExpVec8 a, ExpVec8 b, ExpVec8 c) { return __builtin_ia32_vfmaddps256(a, b, c); }

// exp(x) for x already clamped to [-88, 88.3], on a float (I = int32_t) or a GCC vector of floats (I the
// int vector of the same width): the reduction and polynomial shared by the scalar and vector forms.
template <typename F, typename I>
inline F exp_clamped(F x) {
  // n = round(x / ln2) by the 1.5 * 2^23 shifter (round to nearest, no floor call).
  const F shifter = F{} + 12582912.0f;
  const F t = fmadd(x, F{} + 1.44269504088896341f, shifter);
  const F n = t - shifter;
  F r = fmadd(n, F{} - 0.693359375f, x);  // ln2 in two parts
  r = fmadd(n, F{} + 2.12194440e-4f, r);
  F p = F{} + 1.9875691500e-4f;
  p = fmadd(p, r, F{} + 1.3981999507e-3f);
  p = fmadd(p, r, F{} + 8.3334519073e-3f);
  p = fmadd(p, r, F{} + 4.1665795894e-2f);
  p = fmadd(p, r, F{} + 1.6666665459e-1f);
  p = fmadd(p, r, F{} + 5.0000001201e-1f);
  p = fmadd(p * r, r, r) + 1.0f;
  const I ni = std::bit_cast<I>(t) - std::bit_cast<I>(shifter);
  return p * std::bit_cast<F>((ni + 127) << 23);
}

// Maps float bits to an int whose signed order is the float order (negative floats reversed).
inline int32_t float_order_key(int32_t bits) { return bits ^ ((bits >> 31) & 0x7fffffff); }

inline float vexp(float x) {
  // Clamped through an order-preserving integer key rather than float compares: GCC turns float
  // compares into selects and then computes each side of its caller on its own (for x / (1 + exp(-x))
  // that is a second division per element, 3x slower), while the integer clamp stays one value.
  const int32_t key_lo = float_order_key(std::bit_cast<int32_t>(-88.0f));  // n = -127: 2^n bits are 0
  const int32_t key_hi = float_order_key(std::bit_cast<int32_t>(88.3f));   // n <= 127: no overflow
  const int32_t xb = std::bit_cast<int32_t>(x);
  const int32_t nan_bits = (xb & 0x7fffffff) > 0x7f800000 ? 0x7fc00000 : 0;
  int32_t key = float_order_key(xb);
  key = key < key_lo ? key_lo : key;
  key = key > key_hi ? key_hi : key;
  const float y = exp_clamped<float, int32_t>(std::bit_cast<float>(float_order_key(key)));  // its own inverse
  return std::bit_cast<float>(std::bit_cast<int32_t>(y) | nan_bits);
}

inline double vexp(double x) { return std::exp(x); }

}  // namespace tv::cpu
