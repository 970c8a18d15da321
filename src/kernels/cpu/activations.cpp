// Elementwise activations, written as PyTorch's CPU kernels write them (silu = x / (1 + exp(-x)),
// exact gelu = x * Phi(x) = x * 0.5 * (1 + erf(x / sqrt 2))). exp is vexp so the float loops vectorise.
//
// Float GELU and its derivative call no erf: libm's erff is one scalar call per element (it was ~8% of
// the ViT-B/16 forward), and 1 + erf(x / sqrt 2) loses most of its digits to cancellation for negative
// x. They evaluate Phi on 8-lane vectors instead, by one of two forms chosen per lane:
//  - |x| < 0.5 (0.4 for the derivative): gelu = x / 2 + x^2 P(x^2), gelu' = 1/2 + x D(x^2), with even
//    polynomials P, D (the Taylor series of erf, refitted minimax).
//  - otherwise, with a = |x|: the upper tail Q(a) = 1 - Phi(a) = 1/2 erfc(a / sqrt 2) from exp(-a^2/2)
//    times a polynomial in a that is fitted piecewise on 8 intervals of a (table row = coefficient,
//    column = interval, picked per lane by a register permute). gelu(-a) = -a Q(a), gelu(a) = a - a Q(a),
//    so the negative side keeps full relative accuracy down to the subnormals instead of 1 + erf -> 0.
//    exp(-a^2/2) splits a^2 exactly with an FMA, and is kept as 2^n (1 + s) so that the polynomial's
//    factor (1 + s) is applied by one fused multiply-add.
// Worst error over every float, against erfc and exp in double: gelu 1.67 ulp, gelu' 2.02 ulp (counting
// a subnormal result's ulp as 2^-149). +-inf, NaN and huge |x| come out right: gelu(-inf) is -0, its limit
// (PyTorch's erf formula gives NaN there), and gelu(-0) is +0 (PyTorch: -0). The partial last block
// goes through a zero-padded vector, so each element's result depends on its value only, not on its
// position or the thread count.
// Double keeps std::erf: the double kernels serve the finite-difference gradient tests.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/grain.h"
#include "kernels/cpu/vec.h"
#include "kernels/cpu/vec_exp.h"

namespace tv::cpu {

namespace {
template <typename T>
inline T sigmoid(T x) {
  return T(1) / (T(1) + vexp(-x));
}
}  // namespace

template <typename T>
void silu_fwd(T* y, const T* x, int64_t n) {
#pragma omp parallel for simd if (parallel : n >= kParallelGrain) schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] / (T(1) + vexp(-x[i]));
}

// d silu / dx = s (1 + x (1 - s)), s = sigmoid(x).
template <typename T>
void silu_bwd(T* dx, const T* dy, const T* x, int64_t n) {
#pragma omp parallel for simd if (parallel : n >= kParallelGrain) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const T s = sigmoid(x[i]);
    dx[i] += dy[i] * s * (T(1) + x[i] * (T(1) - s));
  }
}

template <typename T>
void swiglu_fwd(T* h, const T* gate, const T* up, int64_t n) {
#pragma omp parallel for simd if (parallel : n >= kParallelGrain) schedule(static)
  for (int64_t i = 0; i < n; ++i) h[i] = gate[i] / (T(1) + vexp(-gate[i])) * up[i];
}

namespace {
// The wanted gradients are template flags so each variant's loop has no branches and vectorises.
// `over`: write the gradients instead of adding to them.
template <typename T, bool want_gate, bool want_up, bool over>
void swiglu_bwd_loop(T* dgate, T* dup, const T* dh, const T* gate, const T* up, int64_t n) {
#pragma omp parallel for simd if (parallel : n >= kParallelGrain) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const T g = gate[i], s = sigmoid(g);
    if (want_gate) dgate[i] = (over ? T(0) : dgate[i]) + dh[i] * up[i] * s * (T(1) + g * (T(1) - s));
    if (want_up) dup[i] = (over ? T(0) : dup[i]) + dh[i] * g * s;
  }
}

template <typename T, bool over>
void swiglu_bwd_pick(T* dgate, T* dup, const T* dh, const T* gate, const T* up, int64_t n) {
  if (dgate && dup)
    swiglu_bwd_loop<T, true, true, over>(dgate, dup, dh, gate, up, n);
  else if (dgate)
    swiglu_bwd_loop<T, true, false, over>(dgate, dup, dh, gate, up, n);
  else if (dup)
    swiglu_bwd_loop<T, false, true, over>(dgate, dup, dh, gate, up, n);
}
}  // namespace

template <typename T>
void swiglu_bwd(T* dgate, T* dup, const T* dh, const T* gate, const T* up, int64_t n, bool overwrite) {
  if (overwrite)
    swiglu_bwd_pick<T, true>(dgate, dup, dh, gate, up, n);
  else
    swiglu_bwd_pick<T, false>(dgate, dup, dh, gate, up, n);
}

namespace {
typedef int32_t IVec __attribute__((vector_size(32)));
using FVec = Vec<float>;

// The tail polynomials, fitted (weighted least squares iterated towards minimax relative error, then
// rounded to float) on the intervals of a: [0.4, 1.035), [1.035, 1.506), [1.506, 2.447), [2.447, 3.389),
// [3.389, 5.272), [5.272, 7.154), [7.154, 10.92), [10.92, 14.6]; evaluated at d = a - centre (exact:
// every a of an interval lies within a factor 2 of its centre). c0 and c1 are stored as high + low parts
// so that the value rounds once, at its last step. Fit errors are below 3.6e-9 relative.
//   kTailF(a) = a Q(a) exp(a^2/2)                 (so gelu(-a) = -kTailF(a) exp(-a^2/2))
//   kTailW(a) = a phi(0) - Q(a) exp(a^2/2)        (so gelu'(-a) = -kTailW(a) exp(-a^2/2), phi(0) = 1/sqrt(2 pi))
// The positive side uses the same tails: gelu(a) = a - kTailF(a) exp(-a^2/2), gelu'(a) = 1 + kTailW(a)
// exp(-a^2/2). The first interval is centred on W's root 0.75179 (the minimum of gelu): W's c0 there is
// tiny and lies whole in c0 low, so gelu' keeps its relative accuracy next to its zero.
constexpr float kTailF[11][8] = {
    {7.517915368e-01f, 1.270635247e+00f, 1.976564765e+00f, 2.917741060e+00f,  // centre
     4.329599857e+00f, 6.211953163e+00f, 9.035670280e+00f, 1.275919151e+01f},
    {2.254783809e-01f, 2.903399765e-01f, 3.351939023e-01f, 3.629873097e-01f,  // c0 high
     3.803918660e-01f, 3.893189132e-01f, 3.942252696e-01f, 3.965355456e-01f},
    {6.710301648e-09f, 7.159029813e-09f, 1.411979067e-08f, -1.361965030e-08f,  // c0 low
     -6.366131178e-09f, -6.037680134e-09f, 1.415035289e-08f, 1.177459641e-08f},
    {1.695127338e-01f, 9.050595760e-02f, 4.358130693e-02f, 1.949962601e-02f,  // c1 high
     7.542532869e-03f, 2.892600140e-03f, 1.008660882e-03f, 3.705833224e-04f},
    {-6.887926229e-09f, 2.243145447e-09f, 1.585925280e-09f, 5.767689104e-11f,  // c1 low
     -1.794468601e-10f, -1.766715593e-11f, -2.578608334e-11f, -1.045353214e-11f},
    {-1.097448170e-01f, -5.110226944e-02f, -2.067776583e-02f, -7.507559843e-03f,  // c2
     -2.222373383e-03f, -6.390266353e-04f, -1.600361720e-04f, -4.255141903e-05f},
    {5.725561455e-02f, 2.360887267e-02f, 8.167079650e-03f, 2.448117593e-03f,  // c3
     5.639973679e-04f, 1.231034985e-04f, 2.233580926e-05f, 4.318540505e-06f},
    {-2.581765689e-02f, -9.534145705e-03f, -2.855774015e-03f, -7.166254218e-04f,  // c4
     -1.301313314e-04f, -2.181889249e-05f, -2.884330797e-06f, -4.083030376e-07f},
    {1.040682942e-02f, 3.478957340e-03f, 9.117811569e-04f, 1.936910121e-04f,  // c5
     2.807724741e-05f, 3.649728569e-06f, 3.545902700e-07f, 3.687138062e-08f},
    {-3.922316246e-03f, -1.181789092e-03f, -2.795285836e-04f, -5.031083128e-05f,  // c6
     -6.137563560e-06f, -6.080848607e-07f, -4.617221450e-08f, -3.379169389e-09f},
    {1.507811714e-03f, 3.725713468e-04f, 7.863083010e-05f, 1.214693748e-05f,  // c7
     1.214262625e-06f, 9.441701820e-08f, 5.393401281e-09f, 2.900131246e-10f},
};
constexpr float kTailW[11][8] = {
    {7.517915368e-01f, 1.270635247e+00f, 1.976564765e+00f, 2.917741060e+00f,  // centre
     4.329599857e+00f, 6.211953163e+00f, 9.035670280e+00f, 1.275919151e+01f},
    {0.000000000e+00f, 2.784102559e-01f, 6.189512014e-01f, 1.039603353e+00f,  // c0 high
     1.639402032e+00f, 2.415538311e+00f, 3.561080933e+00f, 5.059102535e+00f},
    {6.934385510e-09f, 1.194474075e-09f, -2.630545737e-08f, -4.058710701e-08f,  // c0 low
     -2.473274030e-08f, -9.422961256e-08f, 8.587251443e-08f, -4.485581351e-10f},
    {5.724061728e-01f, 5.075445771e-01f, 4.626906514e-01f, 4.348972738e-01f,  // c1 high
     4.174926877e-01f, 4.085656404e-01f, 4.036592841e-01f, 4.013490081e-01f},
    {-2.212167116e-10f, -7.898981469e-11f, -8.240649940e-09f, -9.166489789e-09f,  // c1 low
     1.151958084e-08f, 1.306189201e-08f, -8.124365181e-09f, -4.678186283e-09f},
    {-8.475638181e-02f, -4.525298253e-02f, -2.179067396e-02f, -9.749815799e-03f,  // c2
     -3.771285992e-03f, -1.446301583e-03f, -5.043360288e-04f, -1.852919231e-04f},
    {3.658175096e-02f, 1.703409664e-02f, 6.892627571e-03f, 2.502523130e-03f,  // c3
     7.408036618e-04f, 2.130095090e-04f, 5.334695743e-05f, 1.418385818e-05f},
    {-1.431247219e-02f, -5.902059376e-03f, -2.041231142e-03f, -6.119456957e-04f,  // c4
     -1.408656826e-04f, -3.076545545e-05f, -5.574442639e-06f, -1.079166054e-06f},
    {5.158555228e-03f, 1.906567253e-03f, 5.708085955e-04f, 1.432970748e-04f,  // c5
     2.599969775e-05f, 4.362460004e-06f, 5.760693398e-07f, 8.163370779e-08f},
    {-1.764252200e-03f, -5.847783759e-04f, -1.561508107e-04f, -3.293036207e-05f,  // c6
     -4.938650363e-06f, -6.284615779e-07f, -6.370411398e-08f, -6.382429252e-09f},
    {6.018693093e-04f, 1.715425169e-04f, 4.082273153e-05f, 7.258528967e-06f,  // c7
     8.935094797e-07f, 8.769077908e-08f, 6.719297119e-09f, 4.870662207e-10f},
};
// Central polynomials in x^2 on |x| < 0.5 and < 0.4 (fit error below 5e-11).
constexpr float kCentralP[5] = {3.989422917e-01f, -6.649037451e-02f, 9.973444976e-03f, -1.186075853e-03f,
                                1.096784472e-04f};
constexpr float kCentralD[5] = {7.978845835e-01f, -2.659615278e-01f, 5.984098464e-02f, -9.492400102e-03f,
                                1.109786681e-03f};
constexpr float kGeluTailFrom = 0.5f, kGradTailFrom = 0.4f;
// The interval index is the exponent and first mantissa bit of a * kIndexScale + kIndexOffset (octaves
// split at 1.5 times their start: [1, 1.5), [1.5, 2), [2, 3), ...); below 1 it is clamped to 0.
constexpr float kIndexScale = 1.0625f, kIndexOffset = 0.4f;
// Beyond a = 14.6, |gelu| and |gelu'| < 2^-150: 0 for the negative side, x and 1 for the positive.
constexpr float kTailEnd = 14.6f;

inline FVec pick(const float* row, IVec idx) { return __builtin_ia32_permvarsf256(vload(row), idx); }

inline FVec tail_poly(const float (*t)[8], FVec ac, IVec idx) {
  const FVec d = ac - pick(t[0], idx);
  FVec p = pick(t[10], idx);
  for (int k = 9; k >= 5; --k) p = fmadd(p, d, pick(t[k], idx));
  p = fmadd(p, d, pick(t[4], idx));  // + c1 low
  p = fmadd(p, d, pick(t[2], idx));  // + c0 low
  p = fmadd(pick(t[3], idx), d, p);  // + c1 high * d, exact product
  return pick(t[1], idx) + p;        // + c0 high
}

// What the tail form needs of a = |x|: a clamped to the table's end, the interval index, and
// exp(-a^2/2) = scale * 2^-64 * (1 + s) (scale 0 past the end). The 2^64 keeps scale a normal float
// for results down to the subnormals.
struct Tail {
  FVec a, ac, scale, s;
  IVec idx;
};
inline Tail tail_args(FVec x) {
  Tail t;
  t.a = std::bit_cast<FVec>(std::bit_cast<IVec>(x) & 0x7fffffff);
  t.ac = t.a > splat(kTailEnd) ? splat(kTailEnd) : t.a;  // NaN compares false and passes through
  t.idx = (std::bit_cast<IVec>(fmadd(t.ac, splat(kIndexScale), splat(kIndexOffset))) >> 22) - 254;
  t.idx = t.idx < 0 ? 0 : t.idx;
  // -a^2/2 = y + yl exactly.
  const FVec h = t.ac * t.ac;
  const FVec y = h * -0.5f, yl = fmadd(t.ac, t.ac, -h) * -0.5f;
  // y = n ln2 + r, |r| <= ln2/2, and exp(r) - 1 - r = r^2 q(r), as in vexp (vec_exp.h).
  const FVec shifter = splat(12582912.0f);
  const FVec k = fmadd(y, splat(1.44269504088896341f), shifter);
  const FVec n = k - shifter;
  FVec r = fmadd(n, splat(-0.693359375f), y);
  r = fmadd(n, splat(2.12194440e-4f), r);
  FVec q = splat(1.9875691500e-4f);
  q = fmadd(q, r, splat(1.3981999507e-3f));
  q = fmadd(q, r, splat(8.3334519073e-3f));
  q = fmadd(q, r, splat(4.1665795894e-2f));
  q = fmadd(q, r, splat(1.6666665459e-1f));
  q = fmadd(q, r, splat(5.0000001201e-1f));
  const FVec u = q * (r * r);
  t.s = r + fmadd(yl, r + u, yl + u);  // exp(r + yl) - 1, yl to first order (|yl| < 2^-17)
  const IVec ni = std::bit_cast<IVec>(k) - std::bit_cast<IVec>(shifter);
  t.scale = std::bit_cast<FVec>((ni + (127 + 64)) << 23);
  t.scale = t.a > splat(kTailEnd) ? splat(0.0f) : t.scale;
  return t;
}

inline FVec even_poly(const float (&c)[5], FVec xx) {
  FVec p = splat(c[4]);
  for (int k = 3; k >= 0; --k) p = fmadd(p, xx, splat(c[k]));
  return p;
}

inline FVec gelu_lanes(FVec x) {
  const Tail t = tail_args(x);
  const FVec f = tail_poly(kTailF, t.ac, t.idx);
  const FVec aq = fmadd(f, t.s, f) * t.scale * 0x1p-64f;  // a Q(a)
  const FVec tail = x < 0.0f ? -aq : x - aq;
  const FVec xx = x * x;
  const FVec mid = fmadd(xx, even_poly(kCentralP, xx), x * 0.5f);
  return t.a < splat(kGeluTailFrom) ? mid : tail;
}

inline FVec gelu_grad_lanes(FVec x) {
  const Tail t = tail_args(x);
  const FVec w = tail_poly(kTailW, t.ac, t.idx);
  const FVec we = fmadd(w, t.s, w) * t.scale * 0x1p-64f;  // a phi(a) - Q(a)
  const FVec tail = x < 0.0f ? -we : 1.0f + we;
  const FVec mid = fmadd(x, even_poly(kCentralD, x * x), splat(0.5f));
  return t.a < splat(kGradTailFrom) ? mid : tail;
}
}  // namespace

template <typename T>
void gelu_fwd(T* y, const T* x, int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    const int64_t full = n / 8 * 8;
#pragma omp parallel for if (full >= kParallelGrain) schedule(static)
    for (int64_t i = 0; i < full; i += 8) vstore(y + i, gelu_lanes(vload(x + i)));
    if (full < n) {
      float xt[8] = {}, yt[8];
      std::copy(x + full, x + n, xt);
      vstore(yt, gelu_lanes(vload(xt)));
      std::copy(yt, yt + (n - full), y + full);
    }
  } else {
    const T k = T(M_SQRT1_2);
#pragma omp parallel for simd if (parallel : n >= kParallelGrain) schedule(static)
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * T(0.5) * (T(1) + std::erf(x[i] * k));
  }
}

// d gelu / dx = Phi(x) + x phi(x), phi the standard normal density.
template <typename T>
void gelu_bwd(T* dx, const T* dy, const T* x, int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    const int64_t full = n / 8 * 8;
#pragma omp parallel for if (full >= kParallelGrain) schedule(static)
    for (int64_t i = 0; i < full; i += 8)
      vstore(dx + i, vload(dx + i) + vload(dy + i) * gelu_grad_lanes(vload(x + i)));
    if (full < n) {
      float dxt[8] = {}, dyt[8] = {}, xt[8] = {};
      std::copy(dx + full, dx + n, dxt);
      std::copy(dy + full, dy + n, dyt);
      std::copy(x + full, x + n, xt);
      vstore(dxt, vload(dxt) + vload(dyt) * gelu_grad_lanes(vload(xt)));
      std::copy(dxt, dxt + (n - full), dx + full);
    }
  } else {
    const T k = T(M_SQRT1_2), kpdf = T(M_2_SQRTPI * M_SQRT1_2 * 0.5);
#pragma omp parallel for simd if (parallel : n >= kParallelGrain) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const T cdf = T(0.5) * (T(1) + std::erf(x[i] * k));
      const T pdf = vexp(T(-0.5) * x[i] * x[i]) * kpdf;
      dx[i] += dy[i] * (cdf + x[i] * pdf);
    }
  }
}

#define TV_INSTANTIATE(T)                                                     \
  template void silu_fwd<T>(T*, const T*, int64_t);                           \
  template void silu_bwd<T>(T*, const T*, const T*, int64_t);                 \
  template void swiglu_fwd<T>(T*, const T*, const T*, int64_t);               \
  template void swiglu_bwd<T>(T*, T*, const T*, const T*, const T*, int64_t, bool); \
  template void gelu_fwd<T>(T*, const T*, int64_t);                           \
  template void gelu_bwd<T>(T*, const T*, const T*, int64_t);
TV_INSTANTIATE(float)
TV_INSTANTIATE(double)
#undef TV_INSTANTIATE

}  // namespace tv::cpu
