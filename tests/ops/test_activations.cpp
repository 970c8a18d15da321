#include <cmath>
#include <functional>

#include "core/ops.h"
#include "harness/op_test.h"

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
