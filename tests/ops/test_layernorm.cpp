#include <cmath>

#include "core/ops.h"
#include "harness/op_test.h"

using namespace tv;
using tvtest::at;

namespace {

// y = (x - mean) / sqrt(var + eps) * w + b with the biased variance, in double.
Tensor naive_layernorm(const Tensor& x, const Tensor& w, const Tensor& b, double eps) {
  const int64_t D = x.size(-1), N = x.numel() / D;
  Tensor y = Tensor::empty(x.shape(), DType::F64);
  for (int64_t n = 0; n < N; ++n) {
    double mu = 0, var = 0;
    for (int64_t d = 0; d < D; ++d) mu += at(x, n * D + d);
    mu /= double(D);
    for (int64_t d = 0; d < D; ++d) var += (at(x, n * D + d) - mu) * (at(x, n * D + d) - mu);
    var /= double(D);
    for (int64_t d = 0; d < D; ++d)
      tvtest::set_at(y, n * D + d, (at(x, n * D + d) - mu) / std::sqrt(var + eps) * at(w, d) + at(b, d));
  }
  return y;
}

}  // namespace

TV_OP_TEST(layernorm, forward, MatchesNaive) {
  Rng rng(41);
  for (DType dt : {DType::F32, DType::F64}) {
    Tensor x = tvtest::rand_tensor({2, 7, 12}, dt, rng, 3, 5);  // offset mean: the two-pass variance matters
    Tensor w = tvtest::rand_tensor({12}, dt, rng), b = tvtest::rand_tensor({12}, dt, rng);
    Tensor y = Tensor::empty(x.shape(), dt), mean = Tensor::empty({14}, dt), rstd = Tensor::empty({14}, dt);
    ops::layernorm_fwd(y, mean, rstd, x, w, b, 1e-6);
    Tensor ref = naive_layernorm(x.to(DType::F64), w.to(DType::F64), b.to(DType::F64), 1e-6);
    double tol = dt == DType::F32 ? 2e-5 : 1e-12;
    tvtest::expect_close(y.to(DType::F64), ref, tol, tol, "layernorm");
  }
}

TV_OP_TEST(layernorm, forward, RejectsBadShapes) {
  Tensor x = Tensor::zeros({7, 12}), y = Tensor::empty({7, 12}), mean = Tensor::empty({7}), rstd = Tensor::empty({7});
  Tensor w = Tensor::zeros({12}), b_bad = Tensor::zeros({13}), m_bad = Tensor::empty({8});
  EXPECT_THROW(ops::layernorm_fwd(y, mean, rstd, x, w, b_bad, 1e-6), Error);
  EXPECT_THROW(ops::layernorm_fwd(y, m_bad, rstd, x, w, w, 1e-6), Error);
}

TV_OP_TEST(layernorm, forward, WeightAndBiasGradientsOverManyRows) {
  // Many rows: the w and b gradients are summed in row blocks (in parallel) and then across blocks.
  Rng rng(43);
  const int64_t N = 1000, D = 40;
  Tensor x = tvtest::rand_tensor({N, D}, DType::F64, rng), w = tvtest::rand_tensor({D}, DType::F64, rng);
  Tensor b = tvtest::rand_tensor({D}, DType::F64, rng), dy = tvtest::rand_tensor({N, D}, DType::F64, rng);
  Tensor y = Tensor::empty({N, D}, DType::F64), mean = Tensor::empty({N}, DType::F64),
         rstd = Tensor::empty({N}, DType::F64);
  ops::layernorm_fwd(y, mean, rstd, x, w, b, 1e-6);
  Tensor dw = Tensor::zeros({D}, DType::F64), db = Tensor::zeros({D}, DType::F64);
  ops::layernorm_bwd(nullptr, &dw, &db, dy, x, w, mean, rstd);
  Tensor rw = Tensor::zeros({D}, DType::F64), rb = Tensor::zeros({D}, DType::F64);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t d = 0; d < D; ++d) {
      double xhat = (at(x, n * D + d) - at(mean, n)) * at(rstd, n);
      tvtest::set_at(rw, d, at(rw, d) + at(dy, n * D + d) * xhat);
      tvtest::set_at(rb, d, at(rb, d) + at(dy, n * D + d));
    }
  tvtest::expect_close(dw, rw, 1e-12, 1e-12, "dw");
  tvtest::expect_close(db, rb, 1e-12, 1e-12, "db");
}

TV_OP_TEST(layernorm, gradcheck, XWeightBias) {
  Rng rng(42);
  Tensor x = tvtest::rand_tensor({7, 12}, DType::F64, rng, -1, 2);
  Tensor w = tvtest::rand_tensor({12}, DType::F64, rng), b = tvtest::rand_tensor({12}, DType::F64, rng);
  Tensor probe = tvtest::rand_tensor({7, 12}, DType::F64, rng);
  Tensor y = Tensor::empty({7, 12}, DType::F64), mean = Tensor::empty({7}, DType::F64),
         rstd = Tensor::empty({7}, DType::F64);
  auto loss = [&] {
    ops::layernorm_fwd(y, mean, rstd, x, w, b, 1e-6);
    return tvtest::dot(y, probe);
  };
  loss();
  // Run the backward twice: it accumulates, so half the sum is the gradient.
  Tensor dx = Tensor::zeros(x.shape(), DType::F64), dw = Tensor::zeros(w.shape(), DType::F64),
         db = Tensor::zeros(b.shape(), DType::F64);
  for (int rep = 0; rep < 2; ++rep) ops::layernorm_bwd(&dx, &dw, &db, probe, x, w, mean, rstd);
  for (Tensor* g : {&dx, &dw, &db}) ops::scale_(*g, 0.5);
  tvtest::expect_gradients(loss, {{"x", &x, &dx}, {"w", &w, &dw}, {"b", &b, &db}});
}
