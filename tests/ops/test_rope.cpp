#include <cmath>

#include "core/ops.h"
#include "harness/op_test.h"

using namespace tv;
using tvtest::at;

namespace {

// Interleaved pairs (2j, 2j+1) rotated by angle (pos_offset + s) * theta^(-2j/Dh). The angles come from
// `angle(m, j)` so the float path can be checked against float32 angles.
template <typename Angle>
Tensor naive_rope(const Tensor& x, Angle angle) {
  const int64_t B = x.size(0), S = x.size(1), H = x.size(2), Dh = x.size(3);
  Tensor y = Tensor::empty(x.shape(), DType::F64);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < S; ++s)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t j = 0; j < Dh / 2; ++j) {
          int64_t i = ((b * S + s) * H + h) * Dh + 2 * j;
          double a = angle(s, j), x0 = at(x, i), x1 = at(x, i + 1);
          tvtest::set_at(y, i, x0 * std::cos(a) - x1 * std::sin(a));
          tvtest::set_at(y, i + 1, x0 * std::sin(a) + x1 * std::cos(a));
        }
  return y;
}

}  // namespace

TV_OP_TEST(rope, forward, MatchesNaive) {
  Rng rng(51);
  const int64_t off = 5;
  const double theta = 10000;
  for (DType dt : {DType::F32, DType::F64})
    for (Shape shape : {Shape{2, 7, 3, 8}, Shape{2, 64, 4, 64}}) {  // the second is big enough to run in parallel
      const int64_t Dh = shape[3];
      Tensor x = tvtest::rand_tensor(shape, dt, rng);
      Tensor y = Tensor::empty(x.shape(), dt);
      ops::rope_fwd(y, x, off, theta);
      Tensor ref = naive_rope(x.to(DType::F64), [&](int64_t s, int64_t j) {
        return double(off + s) * std::pow(theta, -2.0 * double(j) / double(Dh));
      });
      // Float rounds the angles in float32 (see FloatUsesFloat32Angles), ~3e-6 rad at these positions.
      double tol = dt == DType::F32 ? 1e-5 : 1e-14;
      tvtest::expect_close(y.to(DType::F64), ref, tol, tol, "rope");
      // In place (y = x) gives the same.
      Tensor xi = x.clone();
      ops::rope_fwd(xi, xi, off, theta);
      tvtest::expect_close(xi, y, 0, 0, "rope in place");
    }
}

TV_OP_TEST(rope, forward, FloatUsesFloat32Angles) {
  // Far along the sequence the float32 angle m * theta_j differs from the exact one by ~1e-4 rad; the
  // original computes it in float32, and so must the float kernel.
  Rng rng(52);
  const int64_t off = 3000, Dh = 16;
  const double theta = 10000;
  Tensor x = tvtest::rand_tensor({1, 4, 2, Dh}, DType::F32, rng);
  Tensor y = Tensor::empty(x.shape(), DType::F32);
  ops::rope_fwd(y, x, off, theta);
  auto f32_angle = [&](int64_t s, int64_t j) {
    float freq = std::pow(float(theta), float(-2 * j) / float(Dh));
    return double(float(off + s) * freq);
  };
  auto exact_angle = [&](int64_t s, int64_t j) {
    return double(off + s) * std::pow(theta, -2.0 * double(j) / double(Dh));
  };
  Tensor x64 = x.to(DType::F64);
  tvtest::expect_close(y.to(DType::F64), naive_rope(x64, f32_angle), 2e-6, 2e-6, "rope f32 angles");
  // The check above is meaningful: exact angles give visibly different values here.
  Tensor exact = naive_rope(x64, exact_angle);
  double worst = 0;
  for (int64_t i = 0; i < x.numel(); ++i) worst = std::max(worst, std::abs(at(y, i) - at(exact, i)));
  EXPECT_GT(worst, 1e-5);
}

TV_OP_TEST(rope, forward, RejectsBadShapes) {
  Tensor odd = Tensor::zeros({1, 2, 3, 5}), y_odd = Tensor::empty({1, 2, 3, 5});
  EXPECT_THROW(ops::rope_fwd(y_odd, odd, 0, 10000), Error);
  Tensor x3 = Tensor::zeros({2, 3, 4}), y3 = Tensor::empty({2, 3, 4});
  EXPECT_THROW(ops::rope_fwd(y3, x3, 0, 10000), Error);
  Tensor x = Tensor::zeros({1, 2, 3, 4}), y_bad = Tensor::empty({1, 2, 3, 6});
  EXPECT_THROW(ops::rope_fwd(y_bad, x, 0, 10000), Error);
}

TV_OP_TEST(rope, gradcheck, X) {
  Rng rng(53);
  Tensor x = tvtest::rand_tensor({2, 7, 3, 8}, DType::F64, rng);
  Tensor probe = tvtest::rand_tensor(x.shape(), DType::F64, rng);
  auto loss = [&] {
    Tensor y = Tensor::empty(x.shape(), DType::F64);
    ops::rope_fwd(y, x, 11, 500.0);
    return tvtest::dot(y, probe);
  };
  // Run the backward twice: it accumulates, so half the sum is the gradient.
  Tensor dx = Tensor::zeros(x.shape(), DType::F64);
  for (int rep = 0; rep < 2; ++rep) ops::rope_bwd(dx, probe, 11, 500.0);
  ops::scale_(dx, 0.5);
  tvtest::expect_gradients(loss, {{"x", &x, &dx}});
}

// GradMode::Overwrite: dx full of NaN, or dx the same tensor as dy, comes out as zeros + accumulate.
TV_OP_TEST(rope, forward, OverwriteModeEqualsAccumulatingIntoZeros) {
  Rng rng(42);
  for (DType dt : {DType::F32, DType::F64}) {
    Tensor dy = tvtest::rand_tensor({2, 5, 3, 8}, dt, rng);
    Tensor acc = Tensor::zeros(dy.shape(), dt), over = Tensor::empty(dy.shape(), dt), in_place = dy.clone();
    over.fill_(std::nan(""));
    ops::rope_bwd(acc, dy, 3, 10000.0);
    ops::rope_bwd(over, dy, 3, 10000.0, ops::GradMode::Overwrite);
    ops::rope_bwd(in_place, in_place, 3, 10000.0, ops::GradMode::Overwrite);
    tvtest::expect_close(over, acc, 0, 0, "dx");
    tvtest::expect_close(in_place, acc, 0, 0, "dx in place");
  }
}
