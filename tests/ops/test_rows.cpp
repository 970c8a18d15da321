#include <string>

#include "core/ops.h"
#include "harness/op_test.h"

using namespace tv;
using tvtest::at;

TV_OP_TEST(gather_rows, forward, CopiesRows) {
  Rng rng(91);
  for (DType dt : {DType::F32, DType::F64}) {
    Tensor x = tvtest::rand_tensor({6, 12}, dt, rng);
    Tensor rows = Tensor::from_i32({7}, {5, 0, 0, 3, 5, 1, 2});
    Tensor y = Tensor::empty({7, 12}, dt);
    ops::gather_rows(y, x, rows);
    for (int i = 0; i < 7; ++i)
      for (int d = 0; d < 12; ++d) ASSERT_EQ(at(y, i * 12 + d), at(x, rows.data<int32_t>()[i] * 12 + d));
  }
}

TV_OP_TEST(gather_rows, forward, RejectsBadRows) {
  Tensor x = Tensor::zeros({6, 4}), y = Tensor::empty({2, 4});
  Tensor rows = Tensor::from_i32({2}, {1, 6});
  try {
    ops::gather_rows(y, x, rows);
    ADD_FAILURE() << "row 6 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rows[1] = 6"), std::string::npos) << e.what();
  }
  Tensor y_bad = Tensor::empty({3, 4}), ok = Tensor::from_i32({2}, {1, 2});
  EXPECT_THROW(ops::gather_rows(y_bad, x, ok), Error);
}

TV_OP_TEST(gather_rows, gradcheck, X) {
  // The backward of a gather is a scatter-add of dy back to the rows read.
  Rng rng(92);
  Tensor x = tvtest::rand_tensor({6, 12}, DType::F64, rng);
  Tensor rows = Tensor::from_i32({7}, {5, 0, 0, 3, 5, 1, 5});
  Tensor probe = tvtest::rand_tensor({7, 12}, DType::F64, rng);
  auto loss = [&] {
    Tensor y = Tensor::empty({7, 12}, DType::F64);
    ops::gather_rows(y, x, rows);
    return tvtest::dot(y, probe);
  };
  Tensor dx = Tensor::zeros(x.shape(), DType::F64);
  ops::scatter_add_rows(dx, probe, rows, nullptr);
  tvtest::expect_gradients(loss, {{"x", &x, &dx}});
}

TV_OP_TEST(scatter_add_rows, forward, MatchesSerialLoopExactly) {
  // No atomics: each destination row adds its sources in source order, so the result equals the plain
  // serial loop bit for bit (float, many repeats).
  Rng rng(93);
  const int n = 500, n_out = 13, D = 80;  // big enough to run in parallel
  Tensor rows = tvtest::rand_ids({n}, n_out, rng);
  Tensor x = tvtest::rand_tensor({n, D}, DType::F32, rng), w = tvtest::rand_tensor({n}, DType::F32, rng);
  for (bool weighted : {false, true}) {
    Tensor y = tvtest::rand_tensor({n_out, D}, DType::F32, rng);
    Tensor ref = y.clone();
    for (int i = 0; i < n; ++i) {
      float wi = weighted ? w.data<float>()[i] : 1.0f;
      for (int d = 0; d < D; ++d) ref.data<float>()[rows.data<int32_t>()[i] * D + d] += wi * x.data<float>()[i * D + d];
    }
    ops::scatter_add_rows(y, x, rows, weighted ? &w : nullptr);
    for (int i = 0; i < n_out * D; ++i) ASSERT_EQ(y.data<float>()[i], ref.data<float>()[i]) << "element " << i;
  }
}

TV_OP_TEST(scatter_add_rows, forward, RejectsBadRows) {
  Tensor y = Tensor::zeros({4, 3}), x = Tensor::zeros({2, 3});
  Tensor rows = Tensor::from_i32({2}, {0, -1});
  EXPECT_THROW(ops::scatter_add_rows(y, x, rows, nullptr), Error);
  Tensor ok = Tensor::from_i32({2}, {0, 3}), w_bad = Tensor::zeros({3});
  EXPECT_THROW(ops::scatter_add_rows(y, x, ok, &w_bad), Error);
}

TV_OP_TEST(scatter_add_rows, gradcheck, XAndWeights) {
  // d/dx[i] = w[i] dy[rows[i]] and d/dw[i] = dy[rows[i]] . x[i]: a gather of dy, then per-row work.
  Rng rng(94);
  const int n = 7, n_out = 4, D = 12;
  Tensor rows = Tensor::from_i32({n}, {2, 0, 2, 3, 2, 0, 1});
  Tensor x = tvtest::rand_tensor({n, D}, DType::F64, rng), w = tvtest::rand_tensor({n}, DType::F64, rng);
  Tensor probe = tvtest::rand_tensor({n_out, D}, DType::F64, rng);
  auto loss = [&] {
    Tensor y = Tensor::zeros({n_out, D}, DType::F64);
    ops::scatter_add_rows(y, x, rows, &w);
    return tvtest::dot(y, probe);
  };
  Tensor g = Tensor::empty({n, D}, DType::F64);
  ops::gather_rows(g, probe, rows);
  Tensor dx = Tensor::empty({n, D}, DType::F64), dw = Tensor::zeros({n}, DType::F64);
  for (int i = 0; i < n; ++i)
    for (int d = 0; d < D; ++d) {
      tvtest::set_at(dx, i * D + d, at(w, i) * at(g, i * D + d));
      tvtest::set_at(dw, i, at(dw, i) + at(g, i * D + d) * at(x, i * D + d));
    }
  tvtest::expect_gradients(loss, {{"x", &x, &dx}, {"weights", &w, &dw}});
}
