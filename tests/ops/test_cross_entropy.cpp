#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/ops.h"
#include "core/precision.h"
#include "kernels/cpu/bf16.h"
#include "kernels/cpu/cpu_ops.h"
#include "harness/op_test.h"

using namespace tv;
using tvtest::at;

namespace {

struct CeResult {
  Tensor losses, lse;
  int64_t count;
};
CeResult run_ce(const Tensor& logits, const Tensor& targets, int32_t ignore = -100) {
  int64_t N = logits.size(0);
  CeResult r{Tensor::empty({N}, logits.dtype()), Tensor::empty({N}, logits.dtype()), 0};
  r.count = ops::cross_entropy_fwd(r.losses, r.lse, logits, targets, ignore);
  return r;
}

void expect_matches_naive(const Tensor& logits, const Tensor& targets, int32_t ignore, double tol) {
  CeResult r = run_ce(logits, targets, ignore);
  int64_t N = logits.size(0), V = logits.size(1), count = 0;
  for (int64_t n = 0; n < N; ++n) {
    int32_t t = targets.data<int32_t>()[n];
    if (t == ignore) {
      EXPECT_EQ(at(r.losses, n), 0.0) << "ignored row " << n;
      continue;
    }
    ++count;
    double mx = -1e300, sum = 0;
    for (int64_t v = 0; v < V; ++v) mx = std::max(mx, at(logits, n * V + v));
    for (int64_t v = 0; v < V; ++v) sum += std::exp(at(logits, n * V + v) - mx);
    double lse = mx + std::log(sum);
    EXPECT_NEAR(at(r.lse, n), lse, tol * (1 + std::abs(lse))) << "row " << n;
    EXPECT_NEAR(at(r.losses, n), lse - at(logits, n * V + t), tol * (1 + std::abs(lse))) << "row " << n;
  }
  EXPECT_EQ(r.count, count);
}

Tensor targets_with_ignored(int64_t N, int32_t V, Rng& rng, int32_t ignore) {
  Tensor t = tvtest::rand_ids({N}, V, rng);
  for (int64_t n = 1; n < N; n += 3) t.data<int32_t>()[n] = ignore;
  return t;
}

}  // namespace

TV_OP_TEST(cross_entropy, forward, MatchesNaive) {
  Rng rng(41);
  for (DType dt : {DType::F32, DType::F64}) {
    double tol = dt == DType::F32 ? 2e-6 : 1e-13;
    Tensor logits = tvtest::rand_tensor({8, 37}, dt, rng, -5, 5);
    expect_matches_naive(logits, targets_with_ignored(8, 37, rng, -100), -100, tol);
    expect_matches_naive(logits, targets_with_ignored(8, 37, rng, 3), 3, tol);  // another ignore index
  }
}

TV_OP_TEST(cross_entropy, forward, FullVocabulary) {
  Rng rng(42);
  Tensor logits = tvtest::rand_tensor({3, 32001}, DType::F32, rng, -20, 20);
  expect_matches_naive(logits, tvtest::rand_ids({3}, 32001, rng), -100, 2e-6);
}

TV_OP_TEST(cross_entropy, forward, StableForLargeLogits) {
  // Shifting a row by a constant changes nothing; no overflow at 1e4.
  Rng rng(43);
  Tensor a = tvtest::rand_tensor({4, 50}, DType::F32, rng, -3, 3), b = a.clone();
  for (int64_t i = 0; i < b.numel(); ++i) tvtest::set_at(b, i, at(b, i) + 1e4);
  Tensor t = tvtest::rand_ids({4}, 50, rng);
  CeResult ra = run_ce(a, t), rb = run_ce(b, t);
  tvtest::expect_close(rb.losses, ra.losses, 1e-3, 1e-3, "shifted losses");
  for (int64_t n = 0; n < 4; ++n) EXPECT_TRUE(std::isfinite(at(rb.losses, n)));
}

TV_OP_TEST(cross_entropy, forward, RejectsBadTargets) {
  Tensor logits = Tensor::zeros({2, 5}), losses = Tensor::zeros({2}), lse = Tensor::zeros({2});
  Tensor bad = Tensor::from_i32({2}, {1, 5});
  EXPECT_THROW(ops::cross_entropy_fwd(losses, lse, logits, bad), Error);
  Tensor negative = Tensor::from_i32({2}, {-1, 0});
  EXPECT_THROW(ops::cross_entropy_fwd(losses, lse, logits, negative), Error);
}

TV_OP_TEST(cross_entropy, gradcheck, Logits) {
  Rng rng(44);
  const int64_t N = 7, V = 11;
  Tensor logits = tvtest::rand_tensor({N, V}, DType::F64, rng, -3, 3);
  Tensor targets = targets_with_ignored(N, int32_t(V), rng, -100);
  Tensor probe = tvtest::rand_tensor({N}, DType::F64, rng);  // loss = sum(probe * losses)
  auto loss = [&] { return tvtest::dot(run_ce(logits, targets).losses, probe); };
  CeResult r = run_ce(logits, targets);
  Tensor dlogits = Tensor::zeros({N, V}, DType::F64);
  ops::cross_entropy_bwd(dlogits, probe, logits, targets, r.lse);
  tvtest::expect_gradients(loss, {{"logits", &logits, &dlogits}});
  // Ignored rows get nothing, and the backward adds to what is there.
  Tensor again = dlogits.clone();
  ops::cross_entropy_bwd(again, probe, logits, targets, r.lse);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t v = 0; v < V; ++v) {
      double g = at(dlogits, n * V + v);
      if (targets.data<int32_t>()[n] == -100) {
        EXPECT_EQ(g, 0.0);
      }
      EXPECT_NEAR(at(again, n * V + v), 2 * g, 1e-15);
    }
}

TV_OP_TEST(cross_entropy, gradcheck, FloatBackwardMatchesSoftmax) {
  // The float path (vectorised exp) against softmax - onehot computed in double.
  Rng rng(45);
  const int64_t N = 5, V = 1000;
  Tensor logits = tvtest::rand_tensor({N, V}, DType::F32, rng, -8, 8);
  Tensor targets = tvtest::rand_ids({N}, int32_t(V), rng);
  Tensor dl = Tensor::empty({N});
  dl.fill_(0.5);
  CeResult r = run_ce(logits, targets);
  Tensor d = Tensor::zeros({N, V});
  ops::cross_entropy_bwd(d, dl, logits, targets, r.lse);
  Tensor ref = Tensor::empty({N, V}, DType::F64);
  for (int64_t n = 0; n < N; ++n) {
    double mx = -1e300, sum = 0;
    for (int64_t v = 0; v < V; ++v) mx = std::max(mx, at(logits, n * V + v));
    for (int64_t v = 0; v < V; ++v) sum += std::exp(at(logits, n * V + v) - mx);
    for (int64_t v = 0; v < V; ++v)
      tvtest::set_at(ref, n * V + v,
                     0.5 * (std::exp(at(logits, n * V + v) - mx) / sum - (v == targets.data<int32_t>()[n] ? 1 : 0)));
  }
  tvtest::expect_close(d.to(DType::F64), ref, 1e-5, 1e-9, "dlogits f32");
}

// cross_entropy_with_grad: the losses of cross_entropy_fwd bit for bit, and grad_scale times the gradient
// of cross_entropy_bwd, in place or not, zeros on ignored rows.
TV_OP_TEST(cross_entropy_with_grad, forward, EqualsForwardThenBackward) {
  Rng rng(21);
  const int64_t N = 9, V = 1031;  // V not a multiple of the 16 lanes or the 512 block
  for (DType dt : {DType::F32, DType::F64}) {
    Tensor logits = tvtest::rand_tensor({N, V}, dt, rng, -6, 6);
    std::vector<int32_t> t(N);
    for (int64_t n = 0; n < N; ++n) t[size_t(n)] = n == 4 ? -100 : int32_t(rng.below(V));
    Tensor targets = Tensor::from_i32({N}, t);
    const double scale = 1.0 / 7.0;
    CeResult ref = run_ce(logits, targets);
    Tensor dref = Tensor::zeros({N, V}, dt), dl = Tensor::empty({N}, dt);
    dl.fill_(scale);
    ops::cross_entropy_bwd(dref, dl, logits, targets, ref.lse);
    for (bool in_place : {false, true}) {
      Tensor lg = logits.clone(), losses = Tensor::empty({N}, dt);
      Tensor d = in_place ? lg : Tensor::empty({N, V}, dt);
      EXPECT_EQ(ops::cross_entropy_with_grad(losses, d, lg, targets, scale), ref.count);
      for (int64_t n = 0; n < N; ++n) EXPECT_EQ(at(losses, n), at(ref.losses, n)) << "row " << n;
      tvtest::expect_close(d, dref, dt == DType::F32 ? 2e-6 : 1e-13, dt == DType::F32 ? 1e-9 : 1e-16,
                           in_place ? "dlogits (in place)" : "dlogits");
      for (int64_t v = 0; v < V; ++v) ASSERT_EQ(at(d, 4 * V + v), 0.0) << "ignored row";
    }
  }
}

TV_OP_TEST(cross_entropy_with_grad, forward, GradientIsTheLossDerivative) {
  // Finite differences of grad_scale * sum(losses) in double.
  Rng rng(22);
  const int64_t N = 3, V = 7;
  Tensor logits = tvtest::rand_tensor({N, V}, DType::F64, rng, -2, 2);
  Tensor targets = Tensor::from_i32({N}, {1, -100, 6});
  const double scale = 0.3;
  Tensor losses = Tensor::empty({N}, DType::F64), d = Tensor::empty({N, V}, DType::F64);
  ops::cross_entropy_with_grad(losses, d, logits, targets, scale);
  auto loss = [&] {
    Tensor l = Tensor::empty({N}, DType::F64), g = Tensor::empty({N, V}, DType::F64);
    ops::cross_entropy_with_grad(l, g, logits, targets, scale);
    double s = 0;
    for (int64_t n = 0; n < N; ++n) s += scale * at(l, n);
    return s;
  };
  tvtest::expect_gradients(loss, {{"logits", &logits, &d}});
}

// With a bf16 dlogits tensor: the losses are the same bits, the gradient is the bf16 rounding (as the bf16
// GEMMs round) of the float one, and linear_bwd takes it as the float gradient in bf16 matmul precision.
TV_OP_TEST(cross_entropy_with_grad, forward, BfloatGradientFeedsTheBfloatLinearBackward) {
  Rng rng(23);
  const int64_t N = 6, V = 300, D = 20;
  Tensor logits = tvtest::rand_tensor({N, V}, DType::F32, rng, -5, 5);
  Tensor targets = Tensor::from_i32({N}, {3, -100, 299, 0, 150, 7});
  Tensor l32 = Tensor::empty({N}), l16 = Tensor::empty({N}), d32 = Tensor::empty({N, V});
  Tensor d16 = Tensor::empty({N, V}, DType::BF16);
  EXPECT_EQ(ops::cross_entropy_with_grad(l32, d32, logits, targets, 0.2), 5);
  EXPECT_EQ(ops::cross_entropy_with_grad(l16, d16, logits, targets, 0.2), 5);
  for (int64_t n = 0; n < N; ++n) EXPECT_EQ(at(l16, n), at(l32, n));
  const uint16_t* h = reinterpret_cast<const uint16_t*>(d16.raw());
  for (int64_t i = 0; i < N * V; ++i) ASSERT_EQ(h[i], cpu::bf16_round(d32.data<float>()[i])) << "element " << i;

  MatmulPrecisionScope bf16(MatmulPrecision::BF16);
  Tensor x = tvtest::rand_tensor({N, D}, DType::F32, rng), w = tvtest::rand_tensor({V, D}, DType::F32, rng);
  Tensor dx32 = Tensor::zeros({N, D}), dw32 = Tensor::zeros({V, D}), dx16 = dx32.clone(), dw16 = dw32.clone();
  ops::linear_bwd(&dx32, &dw32, nullptr, d32, x, w);
  ops::linear_bwd(&dx16, &dw16, nullptr, d16, x, w);
  EXPECT_EQ(std::memcmp(dx32.raw(), dx16.raw(), size_t(N * D) * 4), 0) << "dx";
  EXPECT_EQ(std::memcmp(dw32.raw(), dw16.raw(), size_t(V * D) * 4), 0) << "dw";
}

// linear_cross_entropy_with_grad: the bits of linear_fwd then cross_entropy_with_grad, in fp32 and f64,
// and in bf16 matmul precision with a bf16 gradient (the fused path; natively and emulated). The shapes
// cut the rows into several blocks with a ragged last one, D spans more than one K block and is odd,
// and V is not a multiple of the 32-column panels.
TV_OP_TEST(linear_cross_entropy_with_grad, forward, EqualsLinearThenCrossEntropy) {
  Rng rng(24);
  const int64_t N = 131, V = 1001;
  for (int64_t D : {int64_t(37), int64_t(1201)}) {
    std::vector<int32_t> t(static_cast<size_t>(N));
    for (int64_t n = 0; n < N; ++n) t[size_t(n)] = n % 17 == 5 ? -100 : int32_t(rng.below(V));
    Tensor targets = Tensor::from_i32({N}, t);
    struct Case {
      DType dt, grad;
      MatmulPrecision precision;
      bool native;
    };
    for (Case c : {Case{DType::F32, DType::F32, MatmulPrecision::F32, true},
                   Case{DType::F64, DType::F64, MatmulPrecision::F32, true},
                   Case{DType::F32, DType::BF16, MatmulPrecision::BF16, true},
                   Case{DType::F32, DType::BF16, MatmulPrecision::BF16, false},
                   Case{DType::F32, DType::F32, MatmulPrecision::BF16, true}}) {
      SCOPED_TRACE(testing::Message() << "D " << D << ", " << dtype_name(c.dt) << " x, " << dtype_name(c.grad)
                                      << " dlogits, bf16 matmuls " << (c.precision == MatmulPrecision::BF16)
                                      << ", native " << c.native);
      MatmulPrecisionScope precision(c.precision);
      cpu::allow_native_bf16(c.native);
      Tensor x = tvtest::rand_tensor({N, D}, c.dt, rng, -1, 1), w = tvtest::rand_tensor({V, D}, c.dt, rng, -0.2, 0.2);
      Tensor logits = Tensor::empty({N, V}, c.dt), lref = Tensor::empty({N}, c.dt), l = Tensor::empty({N}, c.dt);
      Tensor dref = Tensor::empty({N, V}, c.grad), d = Tensor::empty({N, V}, c.grad);
      ops::linear_fwd(logits, x, w, nullptr);
      const int64_t count = ops::cross_entropy_with_grad(lref, dref, logits, targets, 0.25);
      EXPECT_EQ(ops::linear_cross_entropy_with_grad(l, d, x, w, targets, 0.25), count);
      cpu::allow_native_bf16(true);
      EXPECT_EQ(std::memcmp(l.raw(), lref.raw(), size_t(N) * dtype_size(c.dt)), 0) << "losses";
      EXPECT_EQ(std::memcmp(d.raw(), dref.raw(), size_t(N * V) * dtype_size(c.grad)), 0) << "dlogits";
    }
  }
}

TV_OP_TEST(linear_cross_entropy_with_grad, forward, RejectsBadArguments) {
  Tensor x = Tensor::zeros({4, 8}), w = Tensor::zeros({10, 8}), l = Tensor::empty({4}), d = Tensor::empty({4, 10});
  Tensor bad_w = Tensor::zeros({10, 7});
  EXPECT_THROW(ops::linear_cross_entropy_with_grad(l, d, x, bad_w, Tensor::from_i32({4}, {0, 1, 2, 3}), 1.0), Error);
  EXPECT_THROW(ops::linear_cross_entropy_with_grad(l, d, x, w, Tensor::from_i32({4}, {0, 1, 10, 3}), 1.0), Error);
  Tensor small_d = Tensor::empty({4, 9});
  EXPECT_THROW(ops::linear_cross_entropy_with_grad(l, small_d, x, w, Tensor::from_i32({4}, {0, 1, 2, 3}), 1.0), Error);
}
