#include <cmath>

#include "core/ops.h"
#include "harness/op_test.h"

using namespace tv;
using tvtest::at;

namespace {

// y = x / sqrt(mean(x^2) + eps) * gamma, row by row, in double.
void naive_rmsnorm(const Tensor& x, const Tensor& gamma, double eps, Tensor& y, Tensor& rstd) {
  const int64_t D = x.size(-1), N = x.numel() / D;
  y = Tensor::empty(x.shape(), DType::F64);
  rstd = Tensor::empty({N}, DType::F64);
  for (int64_t n = 0; n < N; ++n) {
    double ss = 0;
    for (int64_t d = 0; d < D; ++d) ss += at(x, n * D + d) * at(x, n * D + d);
    double den = std::sqrt(ss / double(D) + eps);
    tvtest::set_at(rstd, n, 1 / den);
    for (int64_t d = 0; d < D; ++d) tvtest::set_at(y, n * D + d, at(x, n * D + d) / den * at(gamma, d));
  }
}

}  // namespace

TV_OP_TEST(rmsnorm, forward, MatchesNaive) {
  Rng rng(31);
  for (DType dt : {DType::F32, DType::F64}) {
    for (Shape shape : {Shape{7, 12}, Shape{2, 3, 5, 8}}) {  // rows = every dim but the last
      Tensor x = tvtest::rand_tensor(shape, dt, rng, -2, 2);
      Tensor gamma = tvtest::rand_tensor({shape.back()}, dt, rng, 0.5, 1.5);
      Tensor y = Tensor::empty(shape, dt), rstd = Tensor::empty({x.numel() / shape.back()}, dt);
      ops::rmsnorm_fwd(y, rstd, x, gamma, 1e-6);
      Tensor ry, rr;
      naive_rmsnorm(x.to(DType::F64), gamma.to(DType::F64), 1e-6, ry, rr);
      double tol = dt == DType::F32 ? 1e-5 : 1e-13;
      tvtest::expect_close(y.to(DType::F64), ry, tol, tol, "rmsnorm y");
      tvtest::expect_close(rstd.to(DType::F64), rr, tol, tol, "rmsnorm rstd");
    }
  }
}

TV_OP_TEST(rmsnorm, forward, EpsDominatesTinyRows) {
  Tensor x = Tensor::from_f32({1, 4}, {1e-4f, -1e-4f, 1e-4f, -1e-4f}), gamma = Tensor::from_f32({4}, {1, 1, 1, 1});
  Tensor y = Tensor::empty({1, 4}), rstd = Tensor::empty({1});
  ops::rmsnorm_fwd(y, rstd, x, gamma, 1e-6);
  EXPECT_NEAR(rstd.data<float>()[0], 1 / std::sqrt(1e-8 + 1e-6), 1e-2);
}

TV_OP_TEST(rmsnorm, forward, RejectsBadShapes) {
  Tensor x = Tensor::zeros({7, 12}), y = Tensor::empty({7, 12}), rstd = Tensor::empty({7});
  Tensor g_bad = Tensor::zeros({11}), r_bad = Tensor::empty({6}), g = Tensor::zeros({12});
  EXPECT_THROW(ops::rmsnorm_fwd(y, rstd, x, g_bad, 1e-6), Error);
  EXPECT_THROW(ops::rmsnorm_fwd(y, r_bad, x, g, 1e-6), Error);
  Tensor g64 = Tensor::zeros({12}, DType::F64);
  EXPECT_THROW(ops::rmsnorm_fwd(y, rstd, x, g64, 1e-6), Error);
}

TV_OP_TEST(rmsnorm, forward, GammaGradientOverManyRows) {
  // Many rows: the gamma gradient is summed in row blocks (in parallel) and then across blocks.
  Rng rng(33);
  const int64_t N = 1000, D = 40;
  Tensor x = tvtest::rand_tensor({N, D}, DType::F64, rng), gamma = tvtest::rand_tensor({D}, DType::F64, rng);
  Tensor dy = tvtest::rand_tensor({N, D}, DType::F64, rng);
  Tensor y = Tensor::empty({N, D}, DType::F64), rstd = Tensor::empty({N}, DType::F64);
  ops::rmsnorm_fwd(y, rstd, x, gamma, 1e-6);
  Tensor dg = Tensor::zeros({D}, DType::F64), ref = Tensor::zeros({D}, DType::F64);
  ops::rmsnorm_bwd(nullptr, &dg, dy, x, gamma, rstd);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t d = 0; d < D; ++d)
      tvtest::set_at(ref, d, at(ref, d) + at(dy, n * D + d) * at(x, n * D + d) * at(rstd, n));
  tvtest::expect_close(dg, ref, 1e-12, 1e-12, "dgamma");
}

TV_OP_TEST(rmsnorm, gradcheck, XAndGamma) {
  Rng rng(32);
  Tensor x = tvtest::rand_tensor({7, 12}, DType::F64, rng), gamma = tvtest::rand_tensor({12}, DType::F64, rng);
  Tensor probe = tvtest::rand_tensor({7, 12}, DType::F64, rng);
  Tensor y = Tensor::empty({7, 12}, DType::F64), rstd = Tensor::empty({7}, DType::F64);
  auto loss = [&] {
    ops::rmsnorm_fwd(y, rstd, x, gamma, 1e-6);
    return tvtest::dot(y, probe);
  };
  loss();
  // Run the backward twice: it accumulates, so half the sum is the gradient.
  Tensor dx = Tensor::zeros(x.shape(), DType::F64), dg = Tensor::zeros(gamma.shape(), DType::F64);
  for (int rep = 0; rep < 2; ++rep) ops::rmsnorm_bwd(&dx, &dg, probe, x, gamma, rstd);
  ops::scale_(dx, 0.5);
  ops::scale_(dg, 0.5);
  tvtest::expect_gradients(loss, {{"x", &x, &dx}, {"gamma", &gamma, &dg}});
  // Each gradient alone (the other skipped) is the same.
  Tensor dx1 = Tensor::zeros(x.shape(), DType::F64);
  loss();
  ops::rmsnorm_bwd(&dx1, nullptr, probe, x, gamma, rstd);
  tvtest::expect_close(dx1, dx, 1e-12, 1e-12, "dx alone");
}

// GradMode::Overwrite: a dx full of NaN comes out as zeros + accumulate would make it; dgamma still adds.
TV_OP_TEST(rmsnorm, forward, OverwriteModeEqualsAccumulatingIntoZeros) {
  Rng rng(41);
  for (DType dt : {DType::F32, DType::F64}) {
    Tensor x = tvtest::rand_tensor({7, 19}, dt, rng), gamma = tvtest::rand_tensor({19}, dt, rng);
    Tensor dy = tvtest::rand_tensor({7, 19}, dt, rng), y = Tensor::empty({7, 19}, dt), rstd = Tensor::empty({7}, dt);
    ops::rmsnorm_fwd(y, rstd, x, gamma, 1e-5);
    Tensor dx_acc = Tensor::zeros({7, 19}, dt), dx_over = Tensor::empty({7, 19}, dt);
    Tensor dg_acc = Tensor::zeros({19}, dt), dg_over = Tensor::zeros({19}, dt);
    dx_over.fill_(std::nan(""));
    ops::rmsnorm_bwd(&dx_acc, &dg_acc, dy, x, gamma, rstd);
    ops::rmsnorm_bwd(&dx_over, &dg_over, dy, x, gamma, rstd, ops::GradMode::Overwrite);
    tvtest::expect_close(dx_over, dx_acc, 0, 0, "dx");
    tvtest::expect_close(dg_over, dg_acc, 0, 0, "dgamma");
  }
}
