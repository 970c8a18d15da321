// The bf16 GEMM (MatmulPrecision::BF16): rounding, every transpose combination, ragged shapes, alpha and
// beta, against a double-precision product of the bf16-rounded operands.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "core/ops.h"
#include "core/precision.h"
#include "core/rng.h"
#include "kernels/cpu/bf16.h"
#include "kernels/cpu/cpu_ops.h"

namespace {

using GemmFn = void (*)(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t,
                        float, float*, int64_t);

// bf16 of x by round to nearest even, denormals to zero (independent of the kernel's own helper).
double bf16(float x) {
  if (x == 0.0f || std::fpclassify(x) == FP_SUBNORMAL) return 0.0;
  int e = 0;
  double m = std::frexp(double(x), &e);           // x = m * 2^e, 0.5 <= |m| < 1
  double scaled = std::ldexp(m, 8);               // 8 significant bits
  double r = std::nearbyint(scaled);              // the default rounding mode is to nearest even
  return std::ldexp(r, e - 8);
}

struct Case {
  bool ta, tb;
  int64_t M, N, K;
  float alpha, beta;
};

// Runs `fn` on random operands (with padded leading dimensions) and checks every element of C against
// the double-precision product of the rounded operands within the fp32 summation bound K * 2^-24 * sum|ab|.
void check(GemmFn fn, const Case& c, uint64_t seed) {
  tv::Rng rng(seed);
  const int64_t ar = c.ta ? c.K : c.M, ac = c.ta ? c.M : c.K, br = c.tb ? c.N : c.K, bc = c.tb ? c.K : c.N;
  const int64_t lda = ac + 3, ldb = bc + 5, ldc = c.N + 2;
  std::vector<float> A(size_t(ar * lda)), B(size_t(br * ldb)), C(size_t(c.M * ldc)), C0;
  for (auto& v : A) v = float(rng.uniform() * 2 - 1);
  for (auto& v : B) v = float(rng.uniform() * 2 - 1);
  for (auto& v : C) v = c.beta == 0.0f ? std::numeric_limits<float>::quiet_NaN() : float(rng.uniform() * 2 - 1);
  C0 = C;
  fn(c.ta, c.tb, c.M, c.N, c.K, c.alpha, A.data(), lda, B.data(), ldb, c.beta, C.data(), ldc);
  auto a_at = [&](int64_t m, int64_t k) { return A[size_t(c.ta ? k * lda + m : m * lda + k)]; };
  auto b_at = [&](int64_t k, int64_t n) { return B[size_t(c.tb ? n * ldb + k : k * ldb + n)]; };
  double worst = 0;
  for (int64_t m = 0; m < c.M; ++m)
    for (int64_t n = 0; n < c.N; ++n) {
      double s = 0, mag = 0;
      for (int64_t k = 0; k < c.K; ++k) {
        double p = bf16(a_at(m, k)) * bf16(b_at(k, n));
        s += p;
        mag += std::fabs(p);
      }
      double want = double(c.alpha) * s + (c.beta == 0.0f ? 0.0 : double(c.beta) * C0[size_t(m * ldc + n)]);
      double got = C[size_t(m * ldc + n)];
      double bound = (double(c.K) + 2) * std::ldexp(1.0, -24) * (std::fabs(c.alpha) * mag + std::fabs(c.beta)) + 1e-30;
      ASSERT_TRUE(std::isfinite(got)) << "C(" << m << "," << n << ")";
      EXPECT_LE(std::fabs(got - want), bound) << "C(" << m << "," << n << ") ta=" << c.ta << " tb=" << c.tb << " M=" << c.M
                                              << " N=" << c.N << " K=" << c.K;
      worst = std::max(worst, std::fabs(got - want) / bound);
      if (::testing::Test::HasFailure()) return;
    }
  // Padding between rows of C is never written.
  for (int64_t m = 0; m < c.M; ++m)
    for (int64_t n = c.N; n < ldc; ++n)
      if (!(std::isnan(C0[size_t(m * ldc + n)]) && std::isnan(C[size_t(m * ldc + n)]))) {
        ASSERT_EQ(C[size_t(m * ldc + n)], C0[size_t(m * ldc + n)]) << "padding written at row " << m;
      }
}

std::vector<Case> cases() {
  std::vector<Case> out;
  const int64_t shapes[][3] = {{1, 1, 1},   {1, 1, 2},    {3, 5, 7},     {14, 32, 256}, {15, 33, 257},
                               {29, 17, 2}, {113, 70, 300}, {2, 300, 513}, {130, 64, 40}, {7, 1, 1000}};
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (auto& s : shapes) {
        out.push_back({ta, tb, s[0], s[1], s[2], 1.0f, 0.0f});
      }
  out.push_back({false, true, 40, 50, 60, 0.5f, 1.0f});
  out.push_back({true, false, 40, 50, 60, -2.0f, 0.25f});
  return out;
}

TEST(GemmBf16, EmulatedMatchesRoundedProduct) {
  uint64_t seed = 1;
  for (const Case& c : cases()) check(tv::cpu::gemm_bf16_emulated, c, seed++);
}

TEST(GemmBf16, NativeKernelMatchesRoundedProduct) {
  if (!tv::cpu::gemm_bf16_native()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
  uint64_t seed = 100;
  for (const Case& c : cases()) check(tv::cpu::gemm_bf16, c, seed++);
}

TEST(GemmBf16, RoundsToNearestEven) {
  // 1 + 2^-8 is halfway between bf16 neighbours 1 and 1 + 2^-7: ties go to the even one (1).
  // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: ties go to 1 + 2^-6.
  const float xs[] = {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, 1.0f + 0x1p-8f + 0x1p-20f, -3.0f - 0x1p-7f, 1e-40f};
  const float want[] = {1.0f, 1.0f + 0x1p-6f, 1.0f + 0x1p-7f, -3.0f, 0.0f};
  for (GemmFn fn : {tv::cpu::gemm_bf16_emulated, tv::cpu::gemm_bf16}) {
    for (size_t i = 0; i < std::size(xs); ++i) {
      float one = 1.0f, c = -7.0f;
      fn(false, false, 1, 1, 1, 1.0f, &xs[i], 1, &one, 1, 0.0f, &c, 1);
      EXPECT_EQ(c, want[i]) << "x = " << xs[i];
    }
  }
}

// The 8-lane rounding gives the scalar one's bits: ties, denormals, zeros, infinities, NaN, overflow to
// infinity, and a spread of ordinary values.
TEST(GemmBf16, LaneRoundingEqualsScalar) {
  std::vector<float> xs = {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, -0.0f, 0.0f, 1e-40f, -1e-40f,
                           std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                           std::numeric_limits<float>::quiet_NaN(), std::bit_cast<float>(0x7f800001u),
                           std::numeric_limits<float>::max(), -std::numeric_limits<float>::max(),
                           std::numeric_limits<float>::min(), 3.0f - 0x1p-7f};
  tv::Rng rng(5);
  while (xs.size() % 8 != 0 || xs.size() < 4096)
    xs.push_back(float((rng.uniform() - 0.5) * std::ldexp(1.0, int(rng.below(80)) - 40)));
  std::vector<uint16_t> lanes(xs.size());
  for (size_t i = 0; i < xs.size(); i += 8) tv::cpu::bf16_round_lanes(lanes.data() + i, tv::cpu::vload(xs.data() + i));
  for (size_t i = 0; i < xs.size(); ++i)
    ASSERT_EQ(lanes[i], tv::cpu::bf16_round(xs[i])) << "x = " << xs[i] << ", bits " << std::bit_cast<uint32_t>(xs[i]);
  // scale_round_bf16, natively (the hardware conversion) and not, over a length that is no multiple of
  // 8 or 16: the scalar rounding of each product.
  for (bool native : {true, false}) {
    tv::cpu::allow_native_bf16(native);
    for (float c : {1.0f, 0.3f, 1e-30f}) {
      std::vector<uint16_t> got(xs.size() - 3);
      tv::cpu::scale_round_bf16(got.data(), xs.data(), c, int64_t(got.size()));
      for (size_t i = 0; i < got.size(); ++i)
        ASSERT_EQ(got[i], tv::cpu::bf16_round(xs[i] * c)) << "x = " << xs[i] << ", c = " << c << ", native " << native;
    }
    tv::cpu::allow_native_bf16(true);
  }
}

TEST(GemmBf16, PrecisionSettingRoutesFloatGemms) {
  tv::Rng rng(7);
  tv::Tensor x = tv::Tensor::empty({9, 40}, tv::DType::F32), w = tv::Tensor::empty({24, 40}, tv::DType::F32);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = float(rng.uniform() - 0.5);
  for (int64_t i = 0; i < w.numel(); ++i) w.data<float>()[i] = float(rng.uniform() - 0.5);
  tv::Tensor y32 = tv::Tensor::empty({9, 24}, tv::DType::F32), y16 = y32.clone(), ref = y32.clone();
  tv::ops::linear_fwd(y32, x, w, nullptr);
  {
    tv::MatmulPrecisionScope bf16_scope(tv::MatmulPrecision::BF16);
    tv::ops::linear_fwd(y16, x, w, nullptr);
  }
  EXPECT_EQ(tv::matmul_precision(), tv::MatmulPrecision::F32);
  tv::cpu::gemm_bf16(false, true, 9, 24, 40, 1.0f, x.data<float>(), 40, w.data<float>(), 40, 0.0f, ref.data<float>(), 24);
  double diff32 = 0;
  for (int64_t i = 0; i < y16.numel(); ++i) {
    EXPECT_EQ(y16.data<float>()[i], ref.data<float>()[i]) << i;
    diff32 = std::max(diff32, double(std::fabs(y16.data<float>()[i] - y32.data<float>()[i])));
  }
  EXPECT_GT(diff32, 0.0) << "bf16 rounding changed nothing: the setting was not applied";
  EXPECT_THROW(tv::parse_matmul_precision("fp16"), tv::Error);
  EXPECT_EQ(tv::parse_matmul_precision("bf16"), tv::MatmulPrecision::BF16);
}

}  // namespace

namespace {
bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}
}  // namespace

// op(A) handed over in bf16 (rounded as the kernels round) gives the bits of the fp32-A call.
TEST(GemmBf16, BfloatAEqualsRoundedFloatA) {
  uint64_t seed = 300;
  for (const Case& c : cases()) {
    tv::Rng rng(seed++);
    const int64_t ar = c.ta ? c.K : c.M, ac = c.ta ? c.M : c.K, br = c.tb ? c.N : c.K, bc = c.tb ? c.K : c.N;
    const int64_t lda = ac + 1, ldb = bc + 2, ldc = c.N;
    std::vector<float> A(size_t(ar * lda)), B(size_t(br * ldb)), C1(size_t(c.M * ldc)), C2;
    std::vector<uint16_t> A16(A.size());
    for (auto& v : A) v = float(rng.uniform() * 2 - 1);
    for (auto& v : B) v = float(rng.uniform() * 2 - 1);
    for (auto& v : C1) v = float(rng.uniform());
    for (size_t i = 0; i < A.size(); ++i) A16[i] = tv::cpu::bf16_round(A[i]);
    C2 = C1;
    tv::cpu::gemm_bf16(c.ta, c.tb, c.M, c.N, c.K, c.alpha, A.data(), lda, B.data(), ldb, 0.5f, C1.data(), ldc);
    tv::cpu::gemm_bf16_a16(c.ta, c.tb, c.M, c.N, c.K, c.alpha, A16.data(), lda, B.data(), ldb, 0.5f, C2.data(), ldc);
    EXPECT_TRUE(same_bits(C1, C2)) << "ta=" << c.ta << " tb=" << c.tb << " M=" << c.M << " N=" << c.N << " K=" << c.K;
  }
}

// CPUs without AVX512-BF16 take the emulated path for every entry point: check those paths here by
// switching the native kernel off.
TEST(GemmBf16, EmulatedEntryPointsAgree) {
  struct NativeOff {
    NativeOff() { tv::cpu::allow_native_bf16(false); }
    ~NativeOff() { tv::cpu::allow_native_bf16(true); }
  } off;
  EXPECT_FALSE(tv::cpu::gemm_bf16_native());
  uint64_t seed = 500;
  for (const Case& c : cases()) check(tv::cpu::gemm_bf16, c, seed++);  // gemm_bf16 itself, emulated
  tv::Rng rng(9);
  const int64_t M = 37, N = 45, K = 71;
  std::vector<float> A(size_t(M * K)), B(size_t(K * N)), A2(size_t(M * K)), C(size_t(M * N)), C1, C2, C3;
  std::vector<uint16_t> A16(A.size());
  for (auto& v : A) v = float(rng.uniform() * 2 - 1);
  for (auto& v : A2) v = float(rng.uniform() * 2 - 1);
  for (auto& v : B) v = float(rng.uniform() * 2 - 1);
  for (size_t i = 0; i < A.size(); ++i) A16[i] = tv::cpu::bf16_round(A[i]);
  C1 = C2 = C;
  tv::cpu::gemm_bf16_emulated(false, false, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f, C1.data(), N);
  tv::cpu::gemm_bf16_a16(false, false, M, N, K, 1.0f, A16.data(), K, B.data(), N, 0.0f, C2.data(), N);
  EXPECT_TRUE(same_bits(C1, C2)) << "bf16 A, emulated";
  // Grouped: the same bits as one call per problem.
  std::vector<float> G1(size_t(M * N)), G2(size_t(M * N)), S1(size_t(M * N)), S2(size_t(M * N));
  const tv::cpu::GemmGroup<float> probs[2] = {{M, N, K, A.data(), K, B.data(), N, G1.data(), N},
                                              {M, N, K, A2.data(), K, B.data(), N, G2.data(), N}};
  tv::cpu::gemm_bf16_grouped(false, false, 1.0f, 0.0f, probs, 2);
  tv::cpu::gemm_bf16(false, false, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f, S1.data(), N);
  tv::cpu::gemm_bf16(false, false, M, N, K, 1.0f, A2.data(), K, B.data(), N, 0.0f, S2.data(), N);
  EXPECT_TRUE(same_bits(G1, S1) && same_bits(G2, S2)) << "grouped, emulated";
}
