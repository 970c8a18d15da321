#include "core/ops.h"
#include "harness/op_test.h"

using namespace tv;
using tvtest::at;

TV_OP_TEST(scale_rows, forward, MatchesNaive) {
  Rng rng(11);
  Tensor x = tvtest::rand_tensor({7, 5}, DType::F32, rng), w = tvtest::rand_tensor({7}, DType::F32, rng);
  Tensor y = Tensor::empty({7, 5});
  ops::scale_rows(y, x, w);
  for (int i = 0; i < 7; ++i)
    for (int j = 0; j < 5; ++j) EXPECT_FLOAT_EQ(at(y, i * 5 + j), float(at(w, i) * at(x, i * 5 + j)));
}

TV_OP_TEST(scale_rows, gradcheck, XAndWeights) {
  Rng rng(12);
  Tensor x = tvtest::rand_tensor({7, 5}, DType::F64, rng), w = tvtest::rand_tensor({7}, DType::F64, rng);
  Tensor probe = tvtest::rand_tensor({7, 5}, DType::F64, rng);
  auto loss = [&] {
    Tensor y = Tensor::empty({7, 5}, DType::F64);
    ops::scale_rows(y, x, w);
    return tvtest::dot(y, probe);
  };
  Tensor dx = Tensor::zeros(x.shape(), DType::F64), dw = Tensor::zeros(w.shape(), DType::F64);
  ops::scale_rows_bwd(&dx, &dw, probe, x, w);
  tvtest::expect_gradients(loss, {{"x", &x, &dx}, {"w", &w, &dw}});
}

TV_OP_TEST(row_dot, forward, MatchesNaive) {
  Rng rng(13);
  Tensor a = tvtest::rand_tensor({7, 12}, DType::F64, rng), b = tvtest::rand_tensor({7, 12}, DType::F64, rng);
  Tensor out = Tensor::empty({7}, DType::F64);
  ops::row_dot(out, a, b);
  for (int i = 0; i < 7; ++i) {
    double s = 0;
    for (int j = 0; j < 12; ++j) s += at(a, i * 12 + j) * at(b, i * 12 + j);
    EXPECT_NEAR(at(out, i), s, 1e-12);
  }
  Tensor bad = Tensor::empty({6}, DType::F64);
  EXPECT_THROW(ops::row_dot(bad, a, b), Error);
}

TV_OP_TEST(row_dot, gradcheck, BothInputs) {
  Rng rng(14);
  Tensor a = tvtest::rand_tensor({7, 12}, DType::F64, rng), b = tvtest::rand_tensor({7, 12}, DType::F64, rng);
  Tensor probe = tvtest::rand_tensor({7}, DType::F64, rng);
  auto loss = [&] {
    Tensor out = Tensor::empty({7}, DType::F64);
    ops::row_dot(out, a, b);
    return tvtest::dot(out, probe);
  };
  Tensor da = Tensor::zeros(a.shape(), DType::F64), db = Tensor::zeros(b.shape(), DType::F64);
  ops::row_dot_bwd(&da, &db, probe, a, b);
  tvtest::expect_gradients(loss, {{"a", &a, &da}, {"b", &b, &db}});
}
