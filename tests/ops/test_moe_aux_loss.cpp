#include <vector>

#include "core/ops.h"
#include "harness/op_test.h"

using namespace tv;
using tvtest::at;

namespace {

double naive_aux(const Tensor& probs, const Tensor& idx) {
  int64_t N = probs.size(0), E = probs.size(1), k = idx.size(1);
  std::vector<double> count(E, 0.0), mean(E, 0.0);
  for (int64_t i = 0; i < N * k; ++i) count[idx.data<int32_t>()[i]] += 1;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t e = 0; e < E; ++e) mean[e] += at(probs, n * E + e) / double(N);
  double s = 0;
  for (int64_t e = 0; e < E; ++e) s += count[e] / double(N * k) * mean[e];
  return double(E) * s;
}

// Router-like inputs: softmax rows and their top-k.
void make_routing(int64_t N, int64_t E, int k, DType dt, Rng& rng, Tensor& probs, Tensor& idx) {
  Tensor logits = tvtest::rand_tensor({N, E}, dt, rng, -2, 2), w = Tensor::empty({N, k}, dt);
  probs = Tensor::empty({N, E}, dt);
  idx = Tensor::empty({N, k}, DType::I32);
  ops::moe_route_fwd(probs, idx, w, logits, k);
}

}  // namespace

TV_OP_TEST(moe_aux_loss, forward, MatchesNaive) {
  Rng rng(31);
  for (DType dt : {DType::F32, DType::F64}) {
    Tensor probs, idx;
    make_routing(13, 8, 2, dt, rng, probs, idx);
    EXPECT_NEAR(ops::moe_aux_loss_fwd(probs, idx), naive_aux(probs, idx), 1e-12);
  }
}

TV_OP_TEST(moe_aux_loss, forward, BalancedRoutingGivesOne) {
  // Uniform probabilities and every expert picked equally often: the minimum, 1.0.
  const int64_t N = 4, E = 4;
  Tensor probs = Tensor::empty({N, E});
  probs.fill_(0.25);
  Tensor idx = Tensor::from_i32({N, 2}, {0, 1, 2, 3, 1, 0, 3, 2});
  EXPECT_NEAR(ops::moe_aux_loss_fwd(probs, idx), 1.0, 1e-7);
}

TV_OP_TEST(moe_aux_loss, gradcheck, Probs) {
  Rng rng(32);
  Tensor probs, idx;
  make_routing(7, 5, 2, DType::F64, rng, probs, idx);
  const double dloss = 0.7;
  auto loss = [&] { return dloss * ops::moe_aux_loss_fwd(probs, idx); };  // idx held fixed (not differentiable)
  Tensor dprobs = Tensor::empty({7, 5}, DType::F64);
  dprobs.fill_(0.25);  // the backward accumulates on top of this
  ops::moe_aux_loss_bwd(dprobs, dloss, probs, idx);
  for (int64_t i = 0; i < dprobs.numel(); ++i) tvtest::set_at(dprobs, i, at(dprobs, i) - 0.25);
  tvtest::expect_gradients(loss, {{"probs", &probs, &dprobs}});
}
