#include <cmath>

#include "core/ops.h"
#include "core/parallel.h"
#include "harness/op_test.h"

using namespace tv;
using tvtest::at;

TV_OP_TEST(add, forward, AddsScaled) {
  Rng rng(101);
  for (DType dt : {DType::F32, DType::F64}) {
    Tensor y = tvtest::rand_tensor({7, 13}, dt, rng), x = tvtest::rand_tensor({7, 13}, dt, rng);
    Tensor ref = Tensor::empty(y.shape(), DType::F64);
    for (int64_t i = 0; i < y.numel(); ++i) tvtest::set_at(ref, i, at(y, i) - 0.25 * at(x, i));
    ops::add_(y, x, -0.25);
    tvtest::expect_close(y.to(DType::F64), ref, 1e-7, 1e-7, "add_");
  }
  Tensor y = Tensor::zeros({3}), x = Tensor::zeros({4}), x64 = Tensor::zeros({3}, DType::F64);
  EXPECT_THROW(ops::add_(y, x), Error);
  EXPECT_THROW(ops::add_(y, x64), Error);
}

TV_OP_TEST(scale, forward, Scales) {
  Rng rng(102);
  for (DType dt : {DType::F32, DType::F64}) {
    Tensor y = tvtest::rand_tensor({5, 9}, dt, rng), ref = y.to(DType::F64);
    for (int64_t i = 0; i < ref.numel(); ++i) tvtest::set_at(ref, i, 3.5 * at(ref, i));
    ops::scale_(y, 3.5);
    tvtest::expect_close(y.to(DType::F64), ref, 1e-7, 0, "scale_");
  }
  Tensor ids = Tensor::from_i32({2}, {1, 2});
  EXPECT_THROW(ops::scale_(ids, 2.0), Error);
}

TV_OP_TEST(sum_squares, forward, AccumulatesInDouble) {
  // 200k floats of 1 + 1e-4 k: a float accumulator would lose ~3 digits; the double one is exact to ~1e-15.
  const int64_t n = 200001;
  Tensor x = Tensor::empty({n});
  double ref = 0;
  for (int64_t i = 0; i < n; ++i) {
    x.data<float>()[i] = float(1 + 1e-4 * double(i % 1000));
    ref += double(x.data<float>()[i]) * double(x.data<float>()[i]);
  }
  EXPECT_NEAR(ops::sum_squares(x), ref, ref * 1e-13);
  // The same bits for any thread count (fixed blocks, summed in order).
  int threads = num_threads();
  set_num_threads(1);
  double one = ops::sum_squares(x);
  set_num_threads(threads);
  EXPECT_EQ(one, ops::sum_squares(x));
  Tensor d = Tensor::from_f32({3}, {1, -2, 3});
  EXPECT_EQ(ops::sum_squares(d.to(DType::F64)), 14.0);
}
