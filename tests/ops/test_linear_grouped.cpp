#include <cmath>
#include <cstring>

#include "core/ops.h"
#include "core/precision.h"
#include "harness/op_test.h"

using namespace tv;

namespace {

// Four groups over 17 rows, one of them empty: rows [0,5), [5,5), [5,12), [12,17).
const std::vector<int64_t> kOffsets = {0, 5, 5, 12, 17};

std::vector<Tensor> rand_weights(Rng& rng, DType dt, int64_t out, int64_t in) {
  std::vector<Tensor> w;
  for (size_t g = 0; g + 1 < kOffsets.size(); ++g) w.push_back(tvtest::rand_tensor({out, in}, dt, rng));
  return w;
}
std::vector<const Tensor*> cptrs(const std::vector<Tensor>& w) {
  std::vector<const Tensor*> p;
  for (const Tensor& t : w) p.push_back(&t);
  return p;
}
bool same_bits(const Tensor& a, const Tensor& b) {
  return a.numel() == b.numel() && std::memcmp(a.data<float>(), b.data<float>(), size_t(a.numel()) * 4) == 0;
}

}  // namespace

// One grouped call gives the same bits as one linear per group, forward and backward, in fp32 and in
// bf16 matmul precision (where the groups share one parallel region).
TV_OP_TEST(linear_grouped, forward, EqualsOneLinearPerGroup) {
  for (MatmulPrecision prec : {MatmulPrecision::F32, MatmulPrecision::BF16}) {
    MatmulPrecisionScope scope(prec);
    Rng rng(5);
    const int64_t R = kOffsets.back(), in = 40, out = 70;
    Tensor x = tvtest::rand_tensor({R, in}, DType::F32, rng), dy = tvtest::rand_tensor({R, out}, DType::F32, rng);
    std::vector<Tensor> w = rand_weights(rng, DType::F32, out, in);
    Tensor y = Tensor::empty({R, out}), dx = tvtest::rand_tensor({R, in}, DType::F32, rng);
    Tensor dx_ref = dx.clone();
    std::vector<Tensor> dw, dw_ref;
    std::vector<Tensor*> dwp;
    for (size_t g = 0; g < w.size(); ++g) {
      dw.push_back(tvtest::rand_tensor({out, in}, DType::F32, rng));
      dw_ref.push_back(dw.back().clone());
    }
    for (Tensor& t : dw) dwp.push_back(&t);
    dwp[2] = nullptr;  // a group whose weight gradient is not wanted
    ops::linear_grouped_fwd(y, x, cptrs(w), kOffsets);
    ops::linear_grouped_bwd(&dx, dwp, dy, x, cptrs(w), kOffsets);
    for (size_t g = 0; g + 1 < kOffsets.size(); ++g) {
      const int64_t r0 = kOffsets[g], n = kOffsets[g + 1] - r0;
      if (n == 0) continue;
      Tensor xg = x.narrow(0, r0, n), dyg = dy.narrow(0, r0, n), dxg = dx_ref.narrow(0, r0, n);
      Tensor yg = Tensor::empty({n, out});
      ops::linear_fwd(yg, xg, w[g], nullptr);
      EXPECT_TRUE(same_bits(y.narrow(0, r0, n).contiguous(), yg)) << "y of group " << g;
      ops::linear_bwd(&dxg, g == 2 ? nullptr : &dw_ref[g], nullptr, dyg, xg, w[g]);
    }
    EXPECT_TRUE(same_bits(dx, dx_ref)) << "dx";
    for (size_t g = 0; g < w.size(); ++g) EXPECT_TRUE(same_bits(dw[g], dw_ref[g])) << "dw of group " << g;
  }
}

TV_OP_TEST(linear_grouped, forward, RejectsBadOffsets) {
  Tensor x = Tensor::zeros({6, 4}), y = Tensor::zeros({6, 3}), w = Tensor::zeros({3, 4});
  EXPECT_THROW(ops::linear_grouped_fwd(y, x, {&w, &w}, {0, 4}), Error);     // one offset short
  EXPECT_THROW(ops::linear_grouped_fwd(y, x, {&w, &w}, {0, 4, 5}), Error);  // does not end at 6
  EXPECT_THROW(ops::linear_grouped_fwd(y, x, {&w, &w}, {0, 5, 4}), Error);  // decreasing
}

TV_OP_TEST(linear_grouped, gradcheck, AllInputs) {
  Rng rng(6);
  const int64_t R = kOffsets.back(), in = 6, out = 4;
  Tensor x = tvtest::rand_tensor({R, in}, DType::F64, rng), probe = tvtest::rand_tensor({R, out}, DType::F64, rng);
  std::vector<Tensor> w = rand_weights(rng, DType::F64, out, in), dw;
  for (const Tensor& t : w) dw.push_back(Tensor::zeros(t.shape(), DType::F64));
  auto loss = [&] {
    Tensor y = Tensor::empty({R, out}, DType::F64);
    ops::linear_grouped_fwd(y, x, cptrs(w), kOffsets);
    return tvtest::dot(y, probe);
  };
  Tensor dx = Tensor::zeros(x.shape(), DType::F64);
  std::vector<Tensor*> dwp;
  for (Tensor& t : dw) dwp.push_back(&t);
  ops::linear_grouped_bwd(&dx, dwp, probe, x, cptrs(w), kOffsets);
  std::vector<tvtest::GradPair> pairs = {{"x", &x, &dx}};
  const char* names[] = {"w0", "w1", "w2", "w3"};
  for (size_t g = 0; g < w.size(); ++g) pairs.push_back({names[g], &w[g], &dw[g]});
  tvtest::expect_gradients(loss, pairs);
}

TV_OP_TEST(linear_grouped, forward, OverwriteModeEqualsAccumulatingIntoZeros) {
  Rng rng(8);
  const int64_t R = kOffsets.back(), in = 6, out = 4;
  Tensor x = tvtest::rand_tensor({R, in}, DType::F32, rng), dy = tvtest::rand_tensor({R, out}, DType::F32, rng);
  std::vector<Tensor> w = rand_weights(rng, DType::F32, out, in);
  std::vector<Tensor*> no_dw(w.size(), nullptr);
  Tensor acc = Tensor::zeros({R, in}), over = Tensor::empty({R, in});
  over.fill_(std::nan(""));
  ops::linear_grouped_bwd(&acc, no_dw, dy, x, cptrs(w), kOffsets);
  ops::linear_grouped_bwd(&over, no_dw, dy, x, cptrs(w), kOffsets, ops::GradMode::Overwrite);
  EXPECT_TRUE(same_bits(over, acc));
}

// Per-group weight gradient modes, mixed in one call: overwritten groups (NaN before) equal zeros +
// accumulate, accumulated ones add to what they held; an empty group that is overwritten becomes zeros.
TV_OP_TEST(linear_grouped, forward, WeightGradientModesPerGroup) {
  Rng rng(9);
  const int64_t R = kOffsets.back(), in = 6, out = 4;
  Tensor x = tvtest::rand_tensor({R, in}, DType::F32, rng), dy = tvtest::rand_tensor({R, out}, DType::F32, rng);
  std::vector<Tensor> w = rand_weights(rng, DType::F32, out, in);
  std::vector<Tensor> acc, mixed;
  std::vector<ops::GradMode> modes;
  for (size_t g = 0; g < w.size(); ++g) {
    const bool over = g != 3;  // group 1 is empty
    acc.push_back(Tensor::zeros({out, in}));
    mixed.push_back(Tensor::empty({out, in}));
    if (!over) acc[g].fill_(0.25);
    mixed[g].fill_(over ? std::nan("") : 0.25);
    modes.push_back(over ? ops::GradMode::Overwrite : ops::GradMode::Accumulate);
  }
  std::vector<Tensor*> pa, pm;
  for (size_t g = 0; g < w.size(); ++g) pa.push_back(&acc[g]), pm.push_back(&mixed[g]);
  ops::linear_grouped_bwd(nullptr, pa, dy, x, cptrs(w), kOffsets);
  ops::linear_grouped_bwd(nullptr, pm, dy, x, cptrs(w), kOffsets, ops::GradMode::Accumulate, modes);
  for (size_t g = 0; g < w.size(); ++g) EXPECT_TRUE(same_bits(mixed[g], acc[g])) << "group " << g;
}
