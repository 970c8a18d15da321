#include <cmath>
#include <cstring>
#include <utility>
#include <vector>

#include "core/ops.h"
#include "harness/op_test.h"

using namespace tv;
using tvtest::at;

TV_OP_TEST(adamw, forward, MatchesFormulaOverSteps) {
  // Several steps against a naive loop of PyTorch's AdamW formula, in double.
  ops::AdamWParams p;
  p.lr = 3e-3;
  p.beta1 = 0.9;
  p.beta2 = 0.95;
  p.eps = 1e-8;
  p.weight_decay = 0.1;
  for (DType dt : {DType::F32, DType::F64}) {
    Rng rng(111);
    const int n = 37;
    Tensor param = tvtest::rand_tensor({n}, dt, rng), m = Tensor::zeros({n}, dt), v = Tensor::zeros({n}, dt);
    std::vector<double> rp(n), rm(n, 0.0), rv(n, 0.0);
    for (int i = 0; i < n; ++i) rp[i] = at(param, i);
    for (int64_t step = 1; step <= 6; ++step) {
      Tensor grad = tvtest::rand_tensor({n}, dt, rng);
      if (step == 3) grad.zero_();  // a zero gradient still decays and moves by the momentum
      p.step = step;
      ops::adamw_step(param, grad, m, v, p);
      for (int i = 0; i < n; ++i) {
        double g = at(grad, i);
        rp[i] *= 1 - p.lr * p.weight_decay;
        rm[i] = p.beta1 * rm[i] + (1 - p.beta1) * g;
        rv[i] = p.beta2 * rv[i] + (1 - p.beta2) * g * g;
        double step_size = p.lr / (1 - std::pow(p.beta1, double(step)));
        double denom = std::sqrt(rv[i]) / std::sqrt(1 - std::pow(p.beta2, double(step))) + p.eps;
        rp[i] -= step_size * rm[i] / denom;
      }
    }
    Tensor ref_p = Tensor::empty({n}, DType::F64), ref_m = Tensor::empty({n}, DType::F64),
           ref_v = Tensor::empty({n}, DType::F64);
    for (int i = 0; i < n; ++i) {
      tvtest::set_at(ref_p, i, rp[i]);
      tvtest::set_at(ref_m, i, rm[i]);
      tvtest::set_at(ref_v, i, rv[i]);
    }
    double tol = dt == DType::F32 ? 2e-6 : 1e-13;
    tvtest::expect_close(param.to(DType::F64), ref_p, tol, tol, "adamw param");
    tvtest::expect_close(m.to(DType::F64), ref_m, tol, tol, "adamw m");
    tvtest::expect_close(v.to(DType::F64), ref_v, tol, tol, "adamw v");
  }
}

TV_OP_TEST(adamw, forward, RejectsBadArguments) {
  Tensor p = Tensor::zeros({4}), g = Tensor::zeros({4}), m = Tensor::zeros({4}), v = Tensor::zeros({5});
  ops::AdamWParams hp;
  EXPECT_THROW(ops::adamw_step(p, g, m, v, hp), Error);
  hp.step = 0;
  EXPECT_THROW(ops::adamw_step(p, g, m, m, hp), Error);
}

TV_OP_TEST(clip_grad_norm, forward, ClipsToMaxNorm) {
  Rng rng(112);
  Tensor a = tvtest::rand_tensor({7, 5}, DType::F32, rng), b = tvtest::rand_tensor({11}, DType::F32, rng);
  Tensor a0 = a.clone(), b0 = b.clone();
  double ss = tvtest::dot(a, a) + tvtest::dot(b, b), total = std::sqrt(ss);
  double got = ops::clip_grad_norm({&a, nullptr, &b}, 0.5);  // null gradients are skipped
  EXPECT_NEAR(got, total, 1e-9 * total);
  double coef = 0.5 / (total + 1e-6);
  for (int64_t i = 0; i < a.numel(); ++i) EXPECT_NEAR(at(a, i), coef * at(a0, i), 1e-7);
  for (int64_t i = 0; i < b.numel(); ++i) EXPECT_NEAR(at(b, i), coef * at(b0, i), 1e-7);
  EXPECT_NEAR(std::sqrt(tvtest::dot(a, a) + tvtest::dot(b, b)), 0.5, 1e-6);
}

TV_OP_TEST(clip_grad_norm, forward, LeavesSmallGradientsAlone) {
  Rng rng(113);
  Tensor a = tvtest::rand_tensor({7, 5}, DType::F64, rng), a0 = a.clone();
  double total = std::sqrt(tvtest::dot(a, a));
  EXPECT_NEAR(ops::clip_grad_norm({&a}, total * 1.01), total, 1e-12);
  for (int64_t i = 0; i < a.numel(); ++i) ASSERT_EQ(at(a, i), at(a0, i));
  std::vector<Tensor*> none;
  EXPECT_EQ(ops::clip_grad_norm(none, 1.0), 0.0);
}

// grad_scale (clipping folded into the step) gives the bits of scaling the gradient first.
TV_OP_TEST(adamw, forward, GradScaleEqualsScalingTheGradientFirst) {
  Rng rng(7);
  const int64_t n = 70001;  // large enough for the parallel path
  Tensor p0 = tvtest::rand_tensor({n}, DType::F32, rng), g = tvtest::rand_tensor({n}, DType::F32, rng);
  Tensor m0 = tvtest::rand_tensor({n}, DType::F32, rng, 0, 0.1), v0 = tvtest::rand_tensor({n}, DType::F32, rng, 0, 0.1);
  ops::AdamWParams hp;
  hp.lr = 1e-3;
  hp.weight_decay = 0.1;
  hp.step = 4;
  const double coef = ops::clip_coefficient(3.7, 1.0);
  ASSERT_LT(coef, 1.0);
  Tensor pa = p0.clone(), ma = m0.clone(), va = v0.clone(), ga = g.clone();
  ops::scale_(ga, coef);
  ops::adamw_step(pa, ga, ma, va, hp);
  Tensor pb = p0.clone(), mb = m0.clone(), vb = v0.clone();
  hp.grad_scale = coef;
  ops::adamw_step(pb, g, mb, vb, hp);
  for (const auto& [a, b] : {std::pair{&pa, &pb}, {&ma, &mb}, {&va, &vb}})
    EXPECT_EQ(std::memcmp(a->raw(), b->raw(), size_t(n) * 4), 0);
  EXPECT_EQ(ops::clip_coefficient(0.5, 1.0), 1.0);
}

// The multi-tensor update gives each tensor the bits of its own adamw_step: sizes from one element to
// several work pieces, different step counts, both lerp forms, with and without grad_scale.
TV_OP_TEST(adamw_step_multi, forward, EqualsOneStepPerTensor) {
  Rng rng(8);
  const std::vector<int64_t> sizes = {1, 300, 16384, 70001, 33};
  for (DType dt : {DType::F32, DType::F64})
    for (double beta1 : {0.9, 0.3})
      for (double gs : {1.0, 0.37}) {
        ops::AdamWParams hp;
        hp.lr = 2e-3;
        hp.beta1 = beta1;
        hp.weight_decay = 0.05;
        hp.grad_scale = gs;
        std::vector<Tensor> p, g, m, v, pr, mr, vr;
        for (int64_t n : sizes) {
          p.push_back(tvtest::rand_tensor({n}, dt, rng));
          g.push_back(tvtest::rand_tensor({n}, dt, rng));
          m.push_back(tvtest::rand_tensor({n}, dt, rng, 0, 0.1));
          v.push_back(tvtest::rand_tensor({n}, dt, rng, 0, 0.1));
          pr.push_back(p.back().clone()), mr.push_back(m.back().clone()), vr.push_back(v.back().clone());
        }
        std::vector<ops::AdamWTensors> ts;
        for (size_t t = 0; t < sizes.size(); ++t) {
          ts.push_back({&p[t], &g[t], &m[t], &v[t], int64_t(t) + 1});
          hp.step = int64_t(t) + 1;
          ops::adamw_step(pr[t], g[t], mr[t], vr[t], hp);
        }
        hp.step = 99;  // not used by the multi-tensor form
        ops::adamw_step_multi(ts, hp);
        for (size_t t = 0; t < sizes.size(); ++t) {
          const size_t bytes = size_t(sizes[t]) * dtype_size(dt);
          EXPECT_EQ(std::memcmp(p[t].raw(), pr[t].raw(), bytes), 0) << "param " << t;
          EXPECT_EQ(std::memcmp(m[t].raw(), mr[t].raw(), bytes), 0) << "m " << t;
          EXPECT_EQ(std::memcmp(v[t].raw(), vr[t].raw(), bytes), 0) << "v " << t;
        }
      }
}

TV_OP_TEST(adamw_step_multi, forward, RejectsBadEntries) {
  Tensor p = Tensor::zeros({4}), g = Tensor::zeros({4}), m = Tensor::zeros({4}), v = Tensor::zeros({4});
  Tensor bad = Tensor::zeros({5}), d = Tensor::zeros({4}, DType::F64);
  ops::AdamWParams hp;
  EXPECT_THROW(ops::adamw_step_multi({{&p, &g, &m, &bad, 1}}, hp), Error);
  EXPECT_THROW(ops::adamw_step_multi({{&p, &g, &m, &v, 0}}, hp), Error);
  EXPECT_THROW(ops::adamw_step_multi({{&p, &g, &m, &v, 1}, {&d, &d, &d, &d, 1}}, hp), Error);
  EXPECT_THROW(ops::adamw_step_multi({{&p, nullptr, &m, &v, 1}}, hp), Error);
}

// grad_norm (one pass over all float gradients) gives the bits of adding sum_squares tensor by tensor.
TV_OP_TEST(clip_grad_norm, forward, NormEqualsSumOfPerTensorSquares) {
  Rng rng(9);
  std::vector<Tensor> gs;
  for (int64_t n : {int64_t(5), int64_t(40000), int64_t(16384), int64_t(1)})
    gs.push_back(tvtest::rand_tensor({n}, DType::F32, rng));
  gs.push_back(tvtest::rand_tensor({300}, DType::F64, rng));
  std::vector<Tensor*> ptrs = {&gs[0], nullptr, &gs[1], &gs[2], &gs[4], &gs[3]};
  double ss = 0;
  for (Tensor* g : ptrs)
    if (g) ss += ops::sum_squares(*g);
  EXPECT_EQ(ops::grad_norm(ptrs), std::sqrt(ss));
}
