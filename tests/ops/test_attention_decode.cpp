// attention_decode_fwd: one query row per sequence against that sequence's own cache, checked against a
// naive double reference of the mask as the spec states it and against attention_fwd with Sq = 1.
#include <cmath>
#include <limits>
#include <vector>

#include "core/ops.h"
#include "harness/op_test.h"

using namespace tv;
using tvtest::at;

namespace {

// Row i at position len[i] - 1 over cache[i] ([1, C, Hkv, Dh]): naive softmax(scale q.k) v in double,
// the mask written as the spec states it (key j visible iff j <= pos and, with chunks, in pos's chunk).
Tensor naive_decode(const Tensor& q, const std::vector<Tensor>& k, const std::vector<Tensor>& v,
                    const std::vector<int64_t>& len, double scale, int64_t chunk) {
  const int64_t n = q.size(0), H = q.size(1), Dh = q.size(2), Hkv = k[0].size(2), rep = H / Hkv;
  Tensor out = Tensor::zeros({n, H, Dh}, DType::F64);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t pos = len[size_t(i)] - 1;
    for (int64_t h = 0; h < H; ++h) {
      const int64_t g = h / rep;
      std::vector<double> s(size_t(pos + 1), -std::numeric_limits<double>::infinity());
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j <= pos; ++j) {
        if (chunk > 0 && j / chunk != pos / chunk) continue;
        double d = 0;
        for (int64_t e = 0; e < Dh; ++e) d += at(q, (i * H + h) * Dh + e) * at(k[size_t(i)], (j * Hkv + g) * Dh + e);
        s[size_t(j)] = scale * d;
        mx = std::max(mx, s[size_t(j)]);
      }
      double sum = 0;
      for (double& x : s) sum += x = std::exp(x - mx);
      for (int64_t e = 0; e < Dh; ++e) {
        double o = 0;
        for (int64_t j = 0; j <= pos; ++j) o += s[size_t(j)] * at(v[size_t(i)], (j * Hkv + g) * Dh + e);
        tvtest::set_at(out, (i * H + h) * Dh + e, o / sum);
      }
    }
  }
  return out;
}

std::vector<const Tensor*> pointers(const std::vector<Tensor>& ts) {
  std::vector<const Tensor*> p;
  for (const Tensor& t : ts) p.push_back(&t);
  return p;
}

}  // namespace

TV_OP_TEST(attention_decode, forward, MatchesNaiveAndAttentionFwd) {
  Rng rng(71);
  // Head sizes of whole vectors (16: 2 float or 4 double vectors) and not (12 floats), which the kernel
  // sums differently.
  for (const int64_t Dh : {int64_t(12), int64_t(16)}) {
  const int64_t H = 6, Hkv = 2;
  // Rows of different lengths in caches of different capacities: 1 key, a chunk boundary, a long cache
  // (long enough that the kernel runs in parallel and crosses blocks of keys), and a row whose chunk has
  // just begun.
  const std::vector<int64_t> len = {1, 6, 30000, 11}, cap = {4, 9, 30010, 11};
  const int64_t n = int64_t(len.size());
  for (DType dt : {DType::F32, DType::F64})
    for (int64_t chunk : {int64_t(0), int64_t(5), int64_t(700)}) {
      Tensor q = tvtest::rand_tensor({n, H, Dh}, dt, rng);
      std::vector<Tensor> k, v;
      for (int64_t i = 0; i < n; ++i) {
        k.push_back(tvtest::rand_tensor({1, cap[size_t(i)], Hkv, Dh}, dt, rng));
        v.push_back(tvtest::rand_tensor({1, cap[size_t(i)], Hkv, Dh}, dt, rng));
      }
      const double scale = 0.37;
      Tensor out = Tensor::empty({n, H, Dh}, dt);
      ops::attention_decode_fwd(out, q, pointers(k), pointers(v), len, scale, chunk);
      std::vector<Tensor> k64, v64;
      for (int64_t i = 0; i < n; ++i) {
        k64.push_back(k[size_t(i)].to(DType::F64));
        v64.push_back(v[size_t(i)].to(DType::F64));
      }
      Tensor ref = naive_decode(q.to(DType::F64), k64, v64, len, scale, chunk);
      const double tol = dt == DType::F32 ? 2e-6 : 1e-13;
      tvtest::expect_close(out.to(DType::F64), ref, tol, tol, "attention_decode vs naive");
      // The same as the training kernel with one query at the row's position.
      for (int64_t i = 0; i < n; ++i) {
        const int64_t L = len[size_t(i)];
        Tensor qi = q.narrow(0, i, 1).contiguous().view({1, 1, H, Dh});
        Tensor ki = k[size_t(i)].narrow(1, 0, L).contiguous(), vi = v[size_t(i)].narrow(1, 0, L).contiguous();
        Tensor oi = Tensor::empty({1, 1, H, Dh}, dt);
        ops::AttentionParams p;
        p.scale = scale;
        p.q_offset = L - 1;
        p.chunk_size = chunk;
        p.causal = true;
        ops::attention_fwd(oi, nullptr, qi, ki, vi, p);
        tvtest::expect_close(out.narrow(0, i, 1).contiguous().view({1, 1, H, Dh}), oi, tol, tol,
                             "attention_decode vs attention_fwd");
      }
    }
  }
}

TV_OP_TEST(attention_decode, forward, RejectsBadArguments) {
  Tensor q = Tensor::zeros({2, 4, 8}), out = Tensor::empty({2, 4, 8});
  Tensor k0 = Tensor::zeros({1, 5, 2, 8}), v0 = Tensor::zeros({1, 5, 2, 8});
  Tensor k3 = Tensor::zeros({1, 5, 3, 8}), kd = Tensor::zeros({1, 5, 2, 6});
  const std::vector<const Tensor*> k = {&k0, &k0}, v = {&v0, &v0};
  EXPECT_NO_THROW(ops::attention_decode_fwd(out, q, k, v, {1, 5}, 1.0, 0));
  EXPECT_ANY_THROW(ops::attention_decode_fwd(out, q, k, v, {1, 6}, 1.0, 0));   // longer than the cache
  EXPECT_ANY_THROW(ops::attention_decode_fwd(out, q, k, v, {0, 2}, 1.0, 0));   // no own key
  EXPECT_ANY_THROW(ops::attention_decode_fwd(out, q, k, v, {1}, 1.0, 0));      // one length short
  EXPECT_ANY_THROW(ops::attention_decode_fwd(out, q, {&k0}, {&v0}, {1, 1}, 1.0, 0));  // one cache short
  EXPECT_ANY_THROW(ops::attention_decode_fwd(out, q, {&k0, &k3}, {&v0, &k3}, {1, 1}, 1.0, 0));  // 3 kv heads
  EXPECT_ANY_THROW(ops::attention_decode_fwd(out, q, {&k0, &kd}, {&v0, &kd}, {1, 1}, 1.0, 0));  // head size
  EXPECT_ANY_THROW(ops::attention_decode_fwd(out, q, k, {&v0, &k3}, {1, 1}, 1.0, 0));  // v unlike k
  EXPECT_ANY_THROW(ops::attention_decode_fwd(out, q, k, v, {1, 1}, 1.0, -1));  // chunk
  Tensor out_bad = Tensor::empty({2, 4, 7});
  EXPECT_ANY_THROW(ops::attention_decode_fwd(out_bad, q, k, v, {1, 1}, 1.0, 0));
  Tensor q64 = Tensor::zeros({2, 4, 8}, DType::F64), out64 = Tensor::empty({2, 4, 8}, DType::F64);
  EXPECT_ANY_THROW(ops::attention_decode_fwd(out64, q64, k, v, {1, 1}, 1.0, 0));  // dtypes differ
}
