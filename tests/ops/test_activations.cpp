#include <algorithm>
#include <bit>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

#include "core/ops.h"
#include "core/parallel.h"
#include "harness/op_test.h"
#include "kernels/cpu/cpu_ops.h"

using namespace tv;
using tvtest::at;

namespace {

double naive_silu(double x) { return x / (1 + std::exp(-x)); }
double naive_gelu(double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }

// Inputs that cover the tails (exp saturating) as well as the middle.
Tensor act_input(DType dt, Rng& rng) {
  Tensor x = tvtest::rand_tensor({7, 12}, dt, rng, -6, 6);
  const double tails[] = {-100, -30, -9, 0, 9, 30, 100};
  for (int i = 0; i < 7; ++i) tvtest::set_at(x, i * 13, tails[i]);
  return x;
}

void check_unary(void (*fwd)(Tensor&, const Tensor&), double (*ref)(double), const char* what, uint64_t seed) {
  Rng rng(seed);
  for (DType dt : {DType::F32, DType::F64}) {
    Tensor x = act_input(dt, rng);
    Tensor y = Tensor::empty(x.shape(), dt), r = Tensor::empty(x.shape(), DType::F64);
    fwd(y, x);
    for (int64_t i = 0; i < x.numel(); ++i) tvtest::set_at(r, i, ref(at(x, i)));
    double tol = dt == DType::F32 ? 2e-6 : 1e-14;
    tvtest::expect_close(y.to(DType::F64), r, tol, tol, what);
  }
}

void gradcheck_unary(void (*fwd)(Tensor&, const Tensor&), void (*bwd)(Tensor&, const Tensor&, const Tensor&),
                     uint64_t seed) {
  Rng rng(seed);
  Tensor x = tvtest::rand_tensor({7, 12}, DType::F64, rng, -4, 4);
  Tensor probe = tvtest::rand_tensor({7, 12}, DType::F64, rng);
  auto loss = [&] {
    Tensor y = Tensor::empty(x.shape(), DType::F64);
    fwd(y, x);
    return tvtest::dot(y, probe);
  };
  // Run the backward twice: it accumulates, so half the sum is the gradient.
  Tensor dx = Tensor::zeros(x.shape(), DType::F64);
  for (int rep = 0; rep < 2; ++rep) bwd(dx, probe, x);
  ops::scale_(dx, 0.5);
  tvtest::expect_gradients(loss, {{"x", &x, &dx}});
}

}  // namespace

TV_OP_TEST(silu, forward, MatchesNaive) { check_unary(ops::silu_fwd, naive_silu, "silu", 71); }
TV_OP_TEST(silu, gradcheck, X) { gradcheck_unary(ops::silu_fwd, ops::silu_bwd, 72); }
TV_OP_TEST(gelu, forward, MatchesNaive) { check_unary(ops::gelu_fwd, naive_gelu, "gelu", 73); }
TV_OP_TEST(gelu, gradcheck, X) { gradcheck_unary(ops::gelu_fwd, ops::gelu_bwd, 74); }

TV_OP_TEST(gelu, forward, IsTheErfForm) {
  // The tanh approximation differs from the exact form by ~2e-4 near |x| = 2; exact is what ViT uses.
  Tensor x = Tensor::from_f32({1}, {2.0f}), y = Tensor::empty({1});
  ops::gelu_fwd(y, x);
  EXPECT_NEAR(y.data<float>()[0], 1.9544997f, 1e-6);
}

namespace {
// GELU and its derivative in double from erfc, which keeps its relative accuracy in the negative tail
// (0.5 (1 + erf) in double is 0 below about x = -8.3).
double exact_gelu(double x) { return 0.5 * x * std::erfc(-x * M_SQRT1_2); }
double exact_gelu_grad(double x) {
  return 0.5 * std::erfc(-x * M_SQRT1_2) + x * std::exp(-0.5 * x * x) * (0.5 * M_2_SQRTPI * M_SQRT1_2);
}
// The spacing of floats at r: 2^-149 among the subnormals.
double float_ulp(double r) {
  r = std::fabs(r);
  return r < FLT_MIN ? std::ldexp(1.0, -149) : std::ldexp(1.0, std::ilogb(r) - 23);
}

// Finite floats to check: every 1499th float of magnitude below 16 (about 1.5 million), every float
// within +-256 floats of each place where the kernel changes form (|x| = 0.4, 0.5, the tail intervals'
// edges, 14.6), every float within 1e-3 of the derivative's root x = -0.7518 (the minimum of gelu), and
// a geometric sweep to 3e38.
std::vector<float> gelu_sweep() {
  std::vector<float> xs;
  const auto add_near = [&](float c, int k) {
    for (int i = -k; i <= k; ++i) {
      const float v = std::bit_cast<float>(std::bit_cast<int32_t>(c) + i);
      xs.push_back(v);
      xs.push_back(-v);
    }
  };
  for (uint32_t b = 0; b < std::bit_cast<uint32_t>(16.0f); b += 1499) add_near(std::bit_cast<float>(b), 0);
  const float edges[] = {0.4f, 0.5f, 1.0353f, 1.5059f, 2.4471f, 3.3882f, 5.2706f, 7.1529f, 10.918f, 14.6f};
  for (float e : edges) add_near(e, 256);
  for (float x = 0.7508f; x < 0.7528f; x = std::nextafter(x, 1.0f)) xs.push_back(-x);
  for (double x = 16; x < 3e38; x *= 1.37) add_near(float(x), 0);
  return xs;
}
}  // namespace

TV_OP_TEST(gelu, forward, FloatWithinTwoUlpEverywhere) {
  // The float kernel evaluates the tail 1 - Phi(|x|) itself, so negative x keeps its relative accuracy
  // (1 + erf would cancel). A sweep of every finite float, run once outside the suite, found gelu within
  // 1.67 ulp of the exact value and gelu' within 2.02 ulp (a subnormal result's ulp being 2^-149); this
  // test checks the sample above against bounds just over those.
  const std::vector<float> xs = gelu_sweep();
  const int64_t n = int64_t(xs.size());
  std::vector<float> y(n), g(n, 0.0f), ones(n, 1.0f);
  cpu::gelu_fwd<float>(y.data(), xs.data(), n);
  cpu::gelu_bwd<float>(g.data(), ones.data(), xs.data(), n);
  double worst_y = 0, worst_g = 0;
  float at_y = 0, at_g = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double x = xs[i], ry = exact_gelu(x), rg = exact_gelu_grad(x);
    const double ey = std::fabs(y[i] - ry) / float_ulp(ry), eg = std::fabs(g[i] - rg) / float_ulp(rg);
    if (!(ey <= worst_y)) worst_y = ey, at_y = xs[i];  // NaN counts as worst
    if (!(eg <= worst_g)) worst_g = eg, at_g = xs[i];
  }
  EXPECT_LE(worst_y, 1.7) << "gelu, worst at x = " << at_y;
  EXPECT_LE(worst_g, 2.05) << "gelu', worst at x = " << at_g;

  // Infinities, NaN and overflowing magnitudes.
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> sx = {inf, -inf, nan, -nan, 3e38f, -3e38f, 0.0f};
  std::vector<float> sy(sx.size()), sg(sx.size(), 0.0f), s1(sx.size(), 1.0f);
  cpu::gelu_fwd<float>(sy.data(), sx.data(), int64_t(sx.size()));
  cpu::gelu_bwd<float>(sg.data(), s1.data(), sx.data(), int64_t(sx.size()));
  EXPECT_EQ(sy[0], inf);
  EXPECT_EQ(sy[1], 0.0f);
  EXPECT_TRUE(std::isnan(sy[2]) && std::isnan(sy[3]));
  EXPECT_EQ(sy[4], 3e38f);
  EXPECT_EQ(sy[5], 0.0f);
  EXPECT_EQ(sy[6], 0.0f);
  EXPECT_EQ(sg[0], 1.0f);
  EXPECT_EQ(sg[1], 0.0f);
  EXPECT_TRUE(std::isnan(sg[2]) && std::isnan(sg[3]));
  EXPECT_EQ(sg[4], 1.0f);
  EXPECT_EQ(sg[5], 0.0f);
  EXPECT_EQ(sg[6], 0.5f);
}

TV_OP_TEST(gelu, forward, FloatIndependentOfPositionAndThreads) {
  // Each element's result depends on its value only: not on its lane, on being in the partial last
  // block, or on the thread count.
  Rng rng(77);
  const int64_t n = 100003;  // past the parallel grain, and not a multiple of 8
  Tensor xt = tvtest::rand_tensor({n}, DType::F32, rng, -9, 9);
  const float* x = xt.data<float>();
  std::vector<float> y(n), g(n, 0.0f), dy(n, 1.0f);
  cpu::gelu_fwd<float>(y.data(), x, n);
  cpu::gelu_bwd<float>(g.data(), dy.data(), x, n);
  for (int64_t off = 1; off < 8; ++off) {
    std::vector<float> ys(n - off), gs(n - off, 0.0f);
    cpu::gelu_fwd<float>(ys.data(), x + off, n - off);
    cpu::gelu_bwd<float>(gs.data(), dy.data(), x + off, n - off);
    for (int64_t i = 0; i < n - off; ++i) {
      ASSERT_EQ(std::bit_cast<uint32_t>(ys[i]), std::bit_cast<uint32_t>(y[i + off])) << "x = " << x[i + off];
      ASSERT_EQ(std::bit_cast<uint32_t>(gs[i]), std::bit_cast<uint32_t>(g[i + off])) << "x = " << x[i + off];
    }
  }
  const int threads = num_threads();
  set_num_threads(1);
  std::vector<float> y1(n), g1(n, 0.0f);
  cpu::gelu_fwd<float>(y1.data(), x, n);
  cpu::gelu_bwd<float>(g1.data(), dy.data(), x, n);
  set_num_threads(threads);
  EXPECT_TRUE(y1 == y);
  EXPECT_TRUE(g1 == g);
}

TV_OP_TEST(silu, forward, RejectsBadShapes) {
  Tensor x = Tensor::zeros({3, 4}), y = Tensor::empty({12});
  EXPECT_THROW(ops::silu_fwd(y, x), Error);
  EXPECT_THROW(ops::gelu_fwd(y, x), Error);
}

TV_OP_TEST(swiglu, forward, MatchesNaive) {
  Rng rng(75);
  for (DType dt : {DType::F32, DType::F64}) {
    Tensor g = act_input(dt, rng), u = tvtest::rand_tensor({7, 12}, dt, rng, -2, 2);
    Tensor h = Tensor::empty(g.shape(), dt), r = Tensor::empty(g.shape(), DType::F64);
    ops::swiglu_fwd(h, g, u);
    for (int64_t i = 0; i < g.numel(); ++i) tvtest::set_at(r, i, naive_silu(at(g, i)) * at(u, i));
    double tol = dt == DType::F32 ? 2e-6 : 1e-14;
    tvtest::expect_close(h.to(DType::F64), r, tol, tol, "swiglu");
  }
  Tensor g = Tensor::zeros({3, 4}), u_bad = Tensor::zeros({4, 3}), h = Tensor::empty({3, 4});
  EXPECT_THROW(ops::swiglu_fwd(h, g, u_bad), Error);
}

TV_OP_TEST(swiglu, gradcheck, GateAndUp) {
  Rng rng(76);
  Tensor g = tvtest::rand_tensor({7, 12}, DType::F64, rng, -4, 4), u = tvtest::rand_tensor({7, 12}, DType::F64, rng);
  Tensor probe = tvtest::rand_tensor({7, 12}, DType::F64, rng);
  auto loss = [&] {
    Tensor h = Tensor::empty(g.shape(), DType::F64);
    ops::swiglu_fwd(h, g, u);
    return tvtest::dot(h, probe);
  };
  // Run the backward twice: it accumulates, so half the sum is the gradient.
  Tensor dg = Tensor::zeros(g.shape(), DType::F64), du = Tensor::zeros(u.shape(), DType::F64);
  for (int rep = 0; rep < 2; ++rep) ops::swiglu_bwd(&dg, &du, probe, g, u);
  ops::scale_(dg, 0.5);
  ops::scale_(du, 0.5);
  tvtest::expect_gradients(loss, {{"gate", &g, &dg}, {"up", &u, &du}});
  Tensor du1 = Tensor::zeros(u.shape(), DType::F64);
  ops::swiglu_bwd(nullptr, &du1, probe, g, u);
  tvtest::expect_close(du1, du, 1e-12, 1e-12, "dup alone");
}

TV_OP_TEST(swiglu, forward, OverwriteModeEqualsAccumulatingIntoZeros) {
  Rng rng(41);
  Tensor g = tvtest::rand_tensor({33}, DType::F32, rng, -4, 4), u = tvtest::rand_tensor({33}, DType::F32, rng);
  Tensor dh = tvtest::rand_tensor({33}, DType::F32, rng);
  Tensor dg0 = Tensor::zeros({33}), du0 = Tensor::zeros({33}), dg1 = Tensor::empty({33}), du1 = Tensor::empty({33});
  dg1.fill_(std::nan(""));
  du1.fill_(std::nan(""));
  ops::swiglu_bwd(&dg0, &du0, dh, g, u);
  ops::swiglu_bwd(&dg1, &du1, dh, g, u, ops::GradMode::Overwrite);
  tvtest::expect_close(dg1, dg0, 0, 0, "dgate");
  tvtest::expect_close(du1, du0, 0, 0, "dup");
}
