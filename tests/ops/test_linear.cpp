#include <cmath>

#include "core/ops.h"
#include "core/precision.h"
#include "harness/op_test.h"
#include "kernels/cpu/cpu_ops.h"

using namespace tv;
using tvtest::at;

namespace {

// Naive reference: y[n,o] = sum_i x[n,i] w[o,i] + b[o].
Tensor naive_linear(const Tensor& x, const Tensor& w, const Tensor* b) {
  int64_t N = x.size(0), in = x.size(1), out = w.size(0);
  Tensor y = Tensor::empty({N, out}, DType::F64);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < out; ++o) {
      double s = b ? at(*b, o) : 0.0;
      for (int64_t i = 0; i < in; ++i) s += at(x, n * in + i) * at(w, o * in + i);
      tvtest::set_at(y, n * out + o, s);
    }
  return y;
}

}  // namespace

TV_OP_TEST(linear, forward, MatchesNaive) {
  Rng rng(1);
  for (DType dt : {DType::F32, DType::F64}) {
    for (bool bias : {false, true}) {
      Tensor x = tvtest::rand_tensor({7, 12}, dt, rng), w = tvtest::rand_tensor({5, 12}, dt, rng);
      Tensor b = tvtest::rand_tensor({5}, dt, rng);
      Tensor y = Tensor::empty({7, 5}, dt);
      ops::linear_fwd(y, x, w, bias ? &b : nullptr);
      Tensor ref = naive_linear(x.to(DType::F64), w.to(DType::F64), bias ? &b : nullptr);
      tvtest::expect_close(y.to(DType::F64), ref, dt == DType::F32 ? 1e-5 : 1e-12, 1e-6, "linear");
    }
  }
}

TV_OP_TEST(linear, forward, RejectsBadShapes) {
  Tensor x = Tensor::zeros({3, 4}), w = Tensor::zeros({5, 6}), y = Tensor::zeros({3, 5});
  EXPECT_THROW(ops::linear_fwd(y, x, w, nullptr), Error);
}

TV_OP_TEST(linear, gradcheck, AllInputs) {
  Rng rng(2);
  Tensor x = tvtest::rand_tensor({7, 12}, DType::F64, rng), w = tvtest::rand_tensor({5, 12}, DType::F64, rng);
  Tensor b = tvtest::rand_tensor({5}, DType::F64, rng);
  Tensor probe = tvtest::rand_tensor({7, 5}, DType::F64, rng);  // loss = sum(probe * y)
  auto loss = [&] {
    Tensor y = Tensor::empty({7, 5}, DType::F64);
    ops::linear_fwd(y, x, w, &b);
    return tvtest::dot(y, probe);
  };
  Tensor dx = Tensor::zeros(x.shape(), DType::F64), dw = Tensor::zeros(w.shape(), DType::F64),
         db = Tensor::zeros(b.shape(), DType::F64);
  ops::linear_bwd(&dx, &dw, &db, probe, x, w);
  tvtest::expect_gradients(loss, {{"x", &x, &dx}, {"w", &w, &dw}, {"b", &b, &db}});
}

TV_OP_TEST(matmul, forward, AllTransposes) {
  Rng rng(3);
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      Tensor a = tvtest::rand_tensor(ta ? Shape{5, 3} : Shape{3, 5}, DType::F64, rng);
      Tensor b = tvtest::rand_tensor(tb ? Shape{4, 5} : Shape{5, 4}, DType::F64, rng);
      Tensor c = tvtest::rand_tensor({3, 4}, DType::F64, rng);
      Tensor ref = Tensor::empty({3, 4}, DType::F64);
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 4; ++j) {
          double s = 0;
          for (int k = 0; k < 5; ++k) s += at(a, ta ? k * 3 + i : i * 5 + k) * at(b, tb ? j * 5 + k : k * 4 + j);
          tvtest::set_at(ref, i * 4 + j, 2.0 * s + 0.5 * at(c, i * 4 + j));
        }
      ops::matmul(c, a, ta, b, tb, 2.0, 0.5);
      tvtest::expect_close(c, ref, 1e-12, 1e-12, "matmul");
    }
}

TV_OP_TEST(matmul, gradcheck, ThroughTransposedProducts) {
  // d(sum(P * A B))/dA = P B^T and /dB = A^T P, both expressed with matmul itself.
  Rng rng(4);
  Tensor a = tvtest::rand_tensor({3, 5}, DType::F64, rng), b = tvtest::rand_tensor({5, 4}, DType::F64, rng);
  Tensor probe = tvtest::rand_tensor({3, 4}, DType::F64, rng);
  auto loss = [&] {
    Tensor c = Tensor::empty({3, 4}, DType::F64);
    ops::matmul(c, a, false, b, false);
    return tvtest::dot(c, probe);
  };
  Tensor da = Tensor::zeros(a.shape(), DType::F64), db = Tensor::zeros(b.shape(), DType::F64);
  ops::matmul(da, probe, false, b, true, 1.0, 1.0);
  ops::matmul(db, a, true, probe, false, 1.0, 1.0);
  tvtest::expect_gradients(loss, {{"a", &a, &da}, {"b", &b, &db}});
}

// GradMode::Overwrite: a buffer full of NaN comes out as zeros + accumulate would make it.
TV_OP_TEST(linear, forward, OverwriteModeEqualsAccumulatingIntoZeros) {
  Rng rng(31);
  for (DType dt : {DType::F32, DType::F64}) {
    Tensor x = tvtest::rand_tensor({9, 12}, dt, rng), w = tvtest::rand_tensor({5, 12}, dt, rng);
    Tensor dy = tvtest::rand_tensor({9, 5}, dt, rng);
    Tensor dx_acc = Tensor::zeros({9, 12}, dt), dx_over = Tensor::empty({9, 12}, dt);
    dx_over.fill_(std::nan(""));
    ops::linear_bwd(&dx_acc, nullptr, nullptr, dy, x, w);
    ops::linear_bwd(&dx_over, nullptr, nullptr, dy, x, w, ops::GradMode::Overwrite);
    tvtest::expect_close(dx_over, dx_acc, 0, 0, "dx");
  }
}

// The weight gradient's Overwrite mode: dw full of NaN comes out as zeros + accumulate, in float and double
// and with a bf16 dy.
TV_OP_TEST(linear, forward, WeightGradientOverwriteEqualsAccumulatingIntoZeros) {
  Rng rng(32);
  for (DType dt : {DType::F32, DType::F64}) {
    Tensor x = tvtest::rand_tensor({9, 12}, dt, rng), w = tvtest::rand_tensor({5, 12}, dt, rng);
    Tensor dy = tvtest::rand_tensor({9, 5}, dt, rng);
    Tensor dw_acc = Tensor::zeros({5, 12}, dt), dw_over = Tensor::empty({5, 12}, dt);
    dw_over.fill_(std::nan(""));
    ops::linear_bwd(nullptr, &dw_acc, nullptr, dy, x, w);
    ops::linear_bwd(nullptr, &dw_over, nullptr, dy, x, w, ops::GradMode::Accumulate, ops::GradMode::Overwrite);
    tvtest::expect_close(dw_over, dw_acc, 0, 0, "dw");
  }
  MatmulPrecisionScope bf16(MatmulPrecision::BF16);
  Tensor x = tvtest::rand_tensor({9, 12}, DType::F32, rng), w = tvtest::rand_tensor({5, 12}, DType::F32, rng);
  Tensor dy = tvtest::rand_tensor({9, 5}, DType::F32, rng).to(DType::BF16);
  Tensor dw_acc = Tensor::zeros({5, 12}), dw_over = Tensor::empty({5, 12});
  dw_over.fill_(std::nan(""));
  ops::linear_bwd(nullptr, &dw_acc, nullptr, dy, x, w);
  ops::linear_bwd(nullptr, &dw_over, nullptr, dy, x, w, ops::GradMode::Accumulate, ops::GradMode::Overwrite);
  tvtest::expect_close(dw_over, dw_acc, 0, 0, "dw from a bf16 dy");
}

// Several linears fed by one input: the bits of one linear_bwd per linear, in order, in fp32 and f64 and
// with bf16 matmuls (natively, where the weight gradients share one packing of x, and emulated), with mixed
// weight-gradient modes.
TV_OP_TEST(linear, forward, SharedInputBackwardEqualsOneLinearEach) {
  Rng rng(33);
  const int64_t N = 131, in = 40;
  const std::vector<int64_t> outs = {24, 16, 16};
  struct Case {
    MatmulPrecision prec;
    DType dt;
    bool native;
  };
  for (Case c : {Case{MatmulPrecision::F32, DType::F32, true}, Case{MatmulPrecision::F32, DType::F64, true},
                 Case{MatmulPrecision::BF16, DType::F32, true}, Case{MatmulPrecision::BF16, DType::F32, false}}) {
      const DType dt = c.dt;
      MatmulPrecisionScope scope(c.prec);
      cpu::allow_native_bf16(c.native);
      Tensor x = tvtest::rand_tensor({N, in}, dt, rng);
      std::vector<Tensor> w, dy, dw_ref, dw;
      for (int64_t o : outs) {
        w.push_back(tvtest::rand_tensor({o, in}, dt, rng));
        dy.push_back(tvtest::rand_tensor({N, o}, dt, rng));
        dw_ref.push_back(tvtest::rand_tensor({o, in}, dt, rng));
        dw.push_back(dw_ref.back().clone());
      }
      dw[1].fill_(std::nan(""));  // overwritten
      const std::vector<ops::GradMode> modes = {ops::GradMode::Accumulate, ops::GradMode::Overwrite,
                                                ops::GradMode::Accumulate};
      Tensor dx_ref = Tensor::empty({N, in}, dt), dx = Tensor::empty({N, in}, dt);
      dx.fill_(std::nan(""));
      for (size_t i = 0; i < outs.size(); ++i)
        ops::linear_bwd(&dx_ref, &dw_ref[i], nullptr, dy[i], x, w[i],
                        i == 0 ? ops::GradMode::Overwrite : ops::GradMode::Accumulate, modes[i]);
      std::vector<Tensor*> pdw;
      std::vector<const Tensor*> pdy, pw;
      for (size_t i = 0; i < outs.size(); ++i) pdw.push_back(&dw[i]), pdy.push_back(&dy[i]), pw.push_back(&w[i]);
      ops::linear_bwd_shared_input(&dx, pdw, pdy, x, pw, ops::GradMode::Overwrite, modes);
      cpu::allow_native_bf16(true);
      tvtest::expect_close(dx, dx_ref, 0, 0, "dx");
      for (size_t i = 0; i < outs.size(); ++i) tvtest::expect_close(dw[i], dw_ref[i], 0, 0, "dw");
    }
}
