#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/ops.h"
#include "harness/op_test.h"

using namespace tv;
using tvtest::at;

namespace {

// Logits whose probabilities are at least `gap` apart (in logit) in every row, so the top-k choice
// cannot flip under the small perturbations of a finite-difference check.
Tensor separated_logits(int64_t N, int64_t E, Rng& rng, double gap = 0.3) {
  Tensor t = Tensor::empty({N, E}, DType::F64);
  for (int64_t n = 0; n < N; ++n) {
    std::vector<int64_t> perm(E);
    std::iota(perm.begin(), perm.end(), 0);
    for (int64_t i = E - 1; i > 0; --i) std::swap(perm[i], perm[rng.below(uint64_t(i + 1))]);
    for (int64_t e = 0; e < E; ++e) tvtest::set_at(t, n * E + e, gap * double(perm[e]) + rng.uniform(0, 0.1 * gap));
  }
  return t;
}

struct Routed {
  Tensor probs, idx, w;
};
Routed route(const Tensor& logits, int k) {
  int64_t N = logits.size(0), E = logits.size(1);
  Routed r{Tensor::empty({N, E}, logits.dtype()), Tensor::empty({N, k}, DType::I32),
           Tensor::empty({N, k}, logits.dtype())};
  ops::moe_route_fwd(r.probs, r.idx, r.w, logits, k);
  return r;
}

}  // namespace

TV_OP_TEST(moe_route, forward, MatchesNaive) {
  Rng rng(21);
  for (DType dt : {DType::F32, DType::F64})
    for (int k : {1, 2, 3}) {
      const int64_t N = 9, E = 8;
      Tensor logits = tvtest::rand_tensor({N, E}, dt, rng, -3, 3);
      Routed r = route(logits, k);
      double tol = dt == DType::F32 ? 1e-6 : 1e-14;
      for (int64_t n = 0; n < N; ++n) {
        double mx = -1e300, sum = 0;
        for (int64_t e = 0; e < E; ++e) mx = std::max(mx, at(logits, n * E + e));
        std::vector<double> p(E);
        for (int64_t e = 0; e < E; ++e) sum += p[e] = std::exp(at(logits, n * E + e) - mx);
        for (double& x : p) x /= sum;
        std::vector<int> order(E);
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return p[a] > p[b]; });
        double z = 0;
        for (int s = 0; s < k; ++s) z += p[order[s]];
        for (int64_t e = 0; e < E; ++e) EXPECT_NEAR(at(r.probs, n * E + e), p[e], tol);
        for (int s = 0; s < k; ++s) {
          EXPECT_EQ(r.idx.data<int32_t>()[n * k + s], order[s]) << "row " << n << " slot " << s;
          EXPECT_NEAR(at(r.w, n * k + s), p[order[s]] / z, tol);
        }
      }
    }
}

TV_OP_TEST(moe_route, forward, TiesGoToTheLowerIndex) {
  Tensor logits = Tensor::from_f32({3, 4}, {1, 1, 1, 0,  //
                                            0, 2, 2, 2,  //
                                            5, 5, 5, 5});
  Routed r = route(logits, 3);
  const int32_t* id = r.idx.data<int32_t>();
  EXPECT_EQ(std::vector<int32_t>(id, id + 9), (std::vector<int32_t>{0, 1, 2, 1, 2, 3, 0, 1, 2}));
  for (int64_t i = 0; i < 9; ++i) EXPECT_NEAR(at(r.w, i), 1.0 / 3.0, 1e-6);
}

TV_OP_TEST(moe_route, forward, RejectsBadK) {
  Tensor logits = Tensor::zeros({2, 4}), probs = Tensor::zeros({2, 4});
  Tensor idx = Tensor::zeros({2, 5}, DType::I32), w = Tensor::zeros({2, 5});
  EXPECT_THROW(ops::moe_route_fwd(probs, idx, w, logits, 5), Error);
  Tensor idx2 = Tensor::from_i32({2, 1}, {0, 4}), dw = Tensor::zeros({2, 1}), dl = Tensor::zeros({2, 4});
  EXPECT_THROW(ops::moe_route_bwd(dl, dw, nullptr, probs, idx2), Error);  // expert 4 of 4
}

TV_OP_TEST(moe_route, gradcheck, WeightsAndProbs) {
  Rng rng(22);
  for (auto [E, k] : {std::pair<int64_t, int>{8, 2}, {5, 3}, {4, 1}}) {
    const int64_t N = 6;
    Tensor logits = separated_logits(N, E, rng);
    Tensor probe_w = tvtest::rand_tensor({N, k}, DType::F64, rng), probe_p = tvtest::rand_tensor({N, E}, DType::F64, rng);
    Routed base = route(logits, k);
    for (bool with_probs : {false, true}) {
      // loss = sum(probe_w * w) (+ sum(probe_p * probs), the path of the load-balancing loss).
      auto loss = [&, k = k] {  // a copy: clang 14 cannot capture a structured binding
        Routed r = route(logits, k);
        for (int64_t i = 0; i < r.idx.numel(); ++i)  // the selection must not move under +-h
          EXPECT_EQ(r.idx.data<int32_t>()[i], base.idx.data<int32_t>()[i]);
        return tvtest::dot(r.w, probe_w) + (with_probs ? tvtest::dot(r.probs, probe_p) : 0.0);
      };
      Tensor dlogits = Tensor::zeros({N, E}, DType::F64);
      ops::moe_route_bwd(dlogits, probe_w, with_probs ? &probe_p : nullptr, base.probs, base.idx);
      tvtest::expect_gradients(loss, {{"logits", &logits, &dlogits}});
    }
  }
}

TV_OP_TEST(moe_route, gradcheck, Accumulates) {
  Rng rng(23);
  Tensor logits = separated_logits(4, 6, rng);
  Routed r = route(logits, 2);
  Tensor dw = tvtest::rand_tensor({4, 2}, DType::F64, rng);
  Tensor once = Tensor::zeros({4, 6}, DType::F64), twice = Tensor::zeros({4, 6}, DType::F64);
  ops::moe_route_bwd(once, dw, nullptr, r.probs, r.idx);
  ops::moe_route_bwd(twice, dw, nullptr, r.probs, r.idx);
  ops::moe_route_bwd(twice, dw, nullptr, r.probs, r.idx);
  for (int64_t i = 0; i < once.numel(); ++i) EXPECT_NEAR(at(twice, i), 2 * at(once, i), 1e-15);
}
