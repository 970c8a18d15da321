#include <cmath>

#include "core/ops.h"
#include "harness/op_test.h"

using namespace tv;
using tvtest::at;

TV_OP_TEST(softmax, forward, MatchesNaive) {
  Rng rng(61);
  for (DType dt : {DType::F32, DType::F64}) {
    Tensor x = tvtest::rand_tensor({3, 7, 12}, dt, rng, -8, 8);
    tvtest::set_at(x, 5, 150.0);   // large logits must not overflow
    tvtest::set_at(x, 13, -1e30);  // a (nearly) masked entry gives 0
    Tensor y = Tensor::empty(x.shape(), dt);
    ops::softmax_fwd(y, x);
    Tensor ref = Tensor::empty(x.shape(), DType::F64);
    for (int64_t n = 0; n < 21; ++n) {
      double mx = -INFINITY, s = 0;
      for (int d = 0; d < 12; ++d) mx = std::max(mx, at(x, n * 12 + d));
      for (int d = 0; d < 12; ++d) s += std::exp(at(x, n * 12 + d) - mx);
      for (int d = 0; d < 12; ++d) tvtest::set_at(ref, n * 12 + d, std::exp(at(x, n * 12 + d) - mx) / s);
    }
    double tol = dt == DType::F32 ? 1e-6 : 1e-14;
    tvtest::expect_close(y.to(DType::F64), ref, tol, tol, "softmax");
  }
}

TV_OP_TEST(softmax, forward, RejectsBadShapes) {
  Tensor x = Tensor::zeros({3, 4}), y = Tensor::empty({4, 3}), y64 = Tensor::empty({3, 4}, DType::F64);
  EXPECT_THROW(ops::softmax_fwd(y, x), Error);
  EXPECT_THROW(ops::softmax_fwd(y64, x), Error);
}

TV_OP_TEST(softmax, gradcheck, X) {
  Rng rng(62);
  Tensor x = tvtest::rand_tensor({7, 12}, DType::F64, rng, -3, 3);
  Tensor probe = tvtest::rand_tensor({7, 12}, DType::F64, rng);
  Tensor y = Tensor::empty(x.shape(), DType::F64);
  auto loss = [&] {
    ops::softmax_fwd(y, x);
    return tvtest::dot(y, probe);
  };
  loss();
  // Run the backward twice: it accumulates, so half the sum is the gradient.
  Tensor dx = Tensor::zeros(x.shape(), DType::F64);
  for (int rep = 0; rep < 2; ++rep) ops::softmax_bwd(dx, probe, y);
  ops::scale_(dx, 0.5);
  tvtest::expect_gradients(loss, {{"x", &x, &dx}});
}
