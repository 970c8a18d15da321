#include <cmath>
#include <limits>
#include <vector>

#include "core/ops.h"
#include "harness/op_test.h"

using namespace tv;
using tvtest::at;

namespace {

struct Case {
  int64_t B, Sq, Sk, H, Hkv, Dh;
  bool causal;
  int64_t chunk, q_offset;
};

// The mask written as the spec states it (not as the kernel's key ranges).
bool visible(const Case& c, int64_t i, int64_t j) {
  int64_t m = c.q_offset + i;
  if (c.causal && j > m) return false;
  if (c.chunk > 0 && j / c.chunk != m / c.chunk) return false;
  return true;
}

ops::AttentionParams params_of(const Case& c, double scale) {
  ops::AttentionParams p;
  p.scale = scale;
  p.q_offset = c.q_offset;
  p.chunk_size = c.chunk;
  p.causal = c.causal;
  return p;
}

// Probabilities of one (b, h) as a full Sq x Sk matrix, in double; also the row log-sum-exps.
std::vector<double> naive_probs(const Case& c, const Tensor& q, const Tensor& k, double scale, int64_t b, int64_t h,
                                std::vector<double>* lse) {
  int64_t g = h / (c.H / c.Hkv);
  std::vector<double> p(c.Sq * c.Sk, 0.0);
  if (lse) lse->assign(c.Sq, -std::numeric_limits<double>::infinity());
  for (int64_t i = 0; i < c.Sq; ++i) {
    double mx = -std::numeric_limits<double>::infinity();
    std::vector<double> s(c.Sk, 0.0);
    for (int64_t j = 0; j < c.Sk; ++j) {
      if (!visible(c, i, j)) continue;
      double d = 0;
      for (int64_t e = 0; e < c.Dh; ++e)
        d += at(q, ((b * c.Sq + i) * c.H + h) * c.Dh + e) * at(k, ((b * c.Sk + j) * c.Hkv + g) * c.Dh + e);
      s[j] = scale * d;
      mx = std::max(mx, s[j]);
    }
    if (mx == -std::numeric_limits<double>::infinity()) continue;  // no visible key: zeros
    double sum = 0;
    for (int64_t j = 0; j < c.Sk; ++j)
      if (visible(c, i, j)) sum += std::exp(s[j] - mx);
    for (int64_t j = 0; j < c.Sk; ++j)
      if (visible(c, i, j)) p[i * c.Sk + j] = std::exp(s[j] - mx) / sum;
    if (lse) (*lse)[i] = mx + std::log(sum);
  }
  return p;
}

void naive_forward(const Case& c, const Tensor& q, const Tensor& k, const Tensor& v, double scale, Tensor& out,
                   Tensor& lse) {
  out = Tensor::zeros({c.B, c.Sq, c.H, c.Dh}, DType::F64);
  lse = Tensor::zeros({c.B, c.H, c.Sq}, DType::F64);
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t h = 0; h < c.H; ++h) {
      int64_t g = h / (c.H / c.Hkv);
      std::vector<double> l;
      std::vector<double> p = naive_probs(c, q, k, scale, b, h, &l);
      for (int64_t i = 0; i < c.Sq; ++i) {
        tvtest::set_at(lse, (b * c.H + h) * c.Sq + i, l[i]);
        for (int64_t e = 0; e < c.Dh; ++e) {
          double o = 0;
          for (int64_t j = 0; j < c.Sk; ++j) o += p[i * c.Sk + j] * at(v, ((b * c.Sk + j) * c.Hkv + g) * c.Dh + e);
          tvtest::set_at(out, ((b * c.Sq + i) * c.H + h) * c.Dh + e, o);
        }
      }
    }
}

// Full-matrix backward in double: dV = P^T dO, dP = dO V^T, dS = P (dP - rowsum(P dP)),
// dQ = scale dS K, dK = scale dS^T Q, dscale = sum dS (q.k).
void naive_backward(const Case& c, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& dout, double scale,
                    Tensor& dq, Tensor& dk, Tensor& dv, double& dscale) {
  dq = Tensor::zeros(q.shape(), DType::F64);
  dk = Tensor::zeros(k.shape(), DType::F64);
  dv = Tensor::zeros(v.shape(), DType::F64);
  dscale = 0;
  auto qi = [&](int64_t b, int64_t i, int64_t h, int64_t e) { return ((b * c.Sq + i) * c.H + h) * c.Dh + e; };
  auto ki = [&](int64_t b, int64_t j, int64_t g, int64_t e) { return ((b * c.Sk + j) * c.Hkv + g) * c.Dh + e; };
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t h = 0; h < c.H; ++h) {
      int64_t g = h / (c.H / c.Hkv);
      std::vector<double> p = naive_probs(c, q, k, scale, b, h, nullptr);
      for (int64_t i = 0; i < c.Sq; ++i) {
        std::vector<double> dp(c.Sk, 0.0);
        double rowdot = 0;
        for (int64_t j = 0; j < c.Sk; ++j) {
          for (int64_t e = 0; e < c.Dh; ++e) dp[j] += at(dout, qi(b, i, h, e)) * at(v, ki(b, j, g, e));
          rowdot += p[i * c.Sk + j] * dp[j];
        }
        for (int64_t j = 0; j < c.Sk; ++j) {
          double pij = p[i * c.Sk + j];
          double ds = pij * (dp[j] - rowdot);
          double qk = 0;
          for (int64_t e = 0; e < c.Dh; ++e) qk += at(q, qi(b, i, h, e)) * at(k, ki(b, j, g, e));
          dscale += ds * qk;
          for (int64_t e = 0; e < c.Dh; ++e) {
            tvtest::set_at(dv, ki(b, j, g, e), at(dv, ki(b, j, g, e)) + pij * at(dout, qi(b, i, h, e)));
            tvtest::set_at(dq, qi(b, i, h, e), at(dq, qi(b, i, h, e)) + scale * ds * at(k, ki(b, j, g, e)));
            tvtest::set_at(dk, ki(b, j, g, e), at(dk, ki(b, j, g, e)) + scale * ds * at(q, qi(b, i, h, e)));
          }
        }
      }
    }
}

struct Inputs {
  Tensor q, k, v;
};
Inputs make_inputs(const Case& c, DType dt, Rng& rng, double amp = 1.0) {
  return {tvtest::rand_tensor({c.B, c.Sq, c.H, c.Dh}, dt, rng, -amp, amp),
          tvtest::rand_tensor({c.B, c.Sk, c.Hkv, c.Dh}, dt, rng, -amp, amp),
          tvtest::rand_tensor({c.B, c.Sk, c.Hkv, c.Dh}, dt, rng, -amp, amp)};
}

const std::vector<Case>& forward_cases() {
  static const std::vector<Case> cases = {
      // B, Sq, Sk, H, Hkv, Dh, causal, chunk, q_offset
      {2, 37, 37, 4, 2, 16, true, 0, 0},      // causal, GQA 2
      {2, 37, 37, 3, 3, 8, true, 8, 0},       // chunked, S not a multiple of the chunk, MHA
      {1, 150, 150, 6, 2, 16, true, 50, 0},   // GQA 3, chunks smaller than a tile, several key blocks
      {1, 150, 150, 2, 1, 24, true, 100, 0},  // chunk larger than a tile
      {2, 70, 70, 4, 2, 8, false, 0, 0},      // non-causal (the ViT), two key blocks
      {1, 33, 33, 2, 2, 16, false, 10, 0},    // non-causal within chunks
      {2, 1, 40, 4, 2, 16, true, 0, 39},      // KV-cache decoding: one new token
      {2, 3, 40, 4, 2, 16, true, 0, 37},      // three new tokens
      {1, 3, 40, 4, 4, 16, true, 16, 37},     // decoding in a chunked layer
      {1, 1, 130, 6, 2, 32, true, 0, 129},    // one token against three key blocks
      {1, 5, 150, 4, 2, 16, true, 64, 120},   // query tile crossing a chunk boundary at position 128
      {2, 128, 128, 4, 2, 32, true, 64, 0},   // the training layout: chunks of one tile (own kernel path)
      {1, 192, 192, 2, 1, 16, true, 64, 0},   // the same, three chunks, GQA 2
  };
  return cases;
}

}  // namespace

TV_OP_TEST(attention, forward, MatchesNaive) {
  Rng rng(11);
  for (const Case& c : forward_cases())
    for (DType dt : {DType::F32, DType::F64}) {
      Inputs in = make_inputs(c, dt, rng, 1.5);
      double scale = 1.0 / std::sqrt(double(c.Dh)) * 1.3;
      Tensor out = Tensor::empty({c.B, c.Sq, c.H, c.Dh}, dt), lse = Tensor::empty({c.B, c.H, c.Sq}, dt);
      ops::attention_fwd(out, &lse, in.q, in.k, in.v, params_of(c, scale));
      Tensor ref_out, ref_lse;
      naive_forward(c, in.q.to(DType::F64), in.k.to(DType::F64), in.v.to(DType::F64), scale, ref_out, ref_lse);
      std::string what = "attention S=" + std::to_string(c.Sq) + "x" + std::to_string(c.Sk) + " H=" +
                         std::to_string(c.H) + "/" + std::to_string(c.Hkv) + " chunk " + std::to_string(c.chunk) +
                         (c.causal ? " causal" : " full") + " offset " + std::to_string(c.q_offset) +
                         (dt == DType::F32 ? " f32" : " f64");
      double tol = dt == DType::F32 ? 2e-5 : 1e-12;
      tvtest::expect_close(out.to(DType::F64), ref_out, tol, tol, what + " out");
      tvtest::expect_close(lse.to(DType::F64), ref_lse, tol, tol, what + " lse");
    }
}

TV_OP_TEST(attention, forward, RowWithoutKeysGivesZeros) {
  // Queries at positions 16 and 17 with chunks of 8 and only 10 keys: their chunk holds no key.
  for (bool causal : {true, false}) {
    Case c{1, 2, 10, 2, 1, 8, causal, 8, 16};
    Rng rng(12);
    Inputs in = make_inputs(c, DType::F32, rng);
    Tensor out = Tensor::empty({1, 2, 2, 8}), lse = Tensor::empty({1, 2, 2});
    ops::attention_fwd(out, &lse, in.q, in.k, in.v, params_of(c, 0.5));
    for (int64_t i = 0; i < out.numel(); ++i) EXPECT_EQ(at(out, i), 0.0);
    for (int64_t i = 0; i < lse.numel(); ++i) EXPECT_EQ(at(lse, i), -std::numeric_limits<double>::infinity());
    Tensor dq = Tensor::zeros(in.q.shape()), dk = Tensor::zeros(in.k.shape()), dv = Tensor::zeros(in.v.shape());
    double dscale = 0;
    Tensor dout = Tensor::empty(out.shape());
    dout.fill_(1.0);
    ops::attention_bwd(dq, dk, dv, &dscale, dout, in.q, in.k, in.v, out, lse, params_of(c, 0.5));
    EXPECT_EQ(dscale, 0.0);
    for (const Tensor* t : {&dq, &dk, &dv})
      for (int64_t i = 0; i < t->numel(); ++i) EXPECT_EQ(at(*t, i), 0.0);
  }
}

TV_OP_TEST(attention, forward, LongSequenceMatchesNaiveRows) {
  // S = 2048 runs in tile buffers only (a full score matrix per head would be 16 MB); spot-check rows.
  const int64_t S = 2048, H = 2, Dh = 16;
  for (int64_t chunk : {int64_t(0), int64_t(512)}) {
    Case c{1, S, S, H, 1, Dh, true, chunk, 0};
    Rng rng(13);
    Inputs in = make_inputs(c, DType::F32, rng, 2.0);
    Tensor out = Tensor::empty({1, S, H, Dh}), lse = Tensor::empty({1, H, S});
    double scale = 0.25;
    ops::attention_fwd(out, &lse, in.q, in.k, in.v, params_of(c, scale));
    for (int64_t i : {int64_t(0), int64_t(1), int64_t(511), int64_t(512), int64_t(1337), S - 1})
      for (int64_t h = 0; h < H; ++h) {
        double mx = -1e300;
        std::vector<double> s(S, -1e300);
        for (int64_t j = 0; j < S; ++j) {
          if (!visible(c, i, j)) continue;
          double d = 0;
          for (int64_t e = 0; e < Dh; ++e) d += at(in.q, (i * H + h) * Dh + e) * at(in.k, j * Dh + e);
          s[j] = scale * d;
          mx = std::max(mx, s[j]);
        }
        double sum = 0;
        std::vector<double> o(Dh, 0.0);
        for (int64_t j = 0; j < S; ++j) {
          if (!visible(c, i, j)) continue;
          double p = std::exp(s[j] - mx);
          sum += p;
          for (int64_t e = 0; e < Dh; ++e) o[e] += p * at(in.v, j * Dh + e);
        }
        for (int64_t e = 0; e < Dh; ++e)
          EXPECT_NEAR(at(out, (i * H + h) * Dh + e), o[e] / sum, 2e-5) << "row " << i << " head " << h;
        EXPECT_NEAR(at(lse, h * S + i), mx + std::log(sum), 2e-5) << "row " << i << " head " << h;
      }
  }
}

TV_OP_TEST(attention, forward, RejectsBadShapes) {
  ops::AttentionParams p;
  Tensor q = Tensor::zeros({1, 4, 3, 8}), k = Tensor::zeros({1, 4, 2, 8}), v = Tensor::zeros({1, 4, 2, 8});
  Tensor out = Tensor::zeros({1, 4, 3, 8});
  EXPECT_THROW(ops::attention_fwd(out, nullptr, q, k, v, p), Error);  // 3 heads, 2 kv heads
  Tensor q4 = Tensor::zeros({1, 4, 4, 8}), out4 = Tensor::zeros({1, 4, 4, 8}), v_bad = Tensor::zeros({1, 5, 2, 8});
  EXPECT_THROW(ops::attention_fwd(out4, nullptr, q4, k, v_bad, p), Error);
  p.q_offset = -1;
  EXPECT_THROW(ops::attention_fwd(out4, nullptr, q4, k, v, p), Error);
}

TV_OP_TEST(attention, gradcheck, QKVAndScale) {
  const std::vector<Case> cases = {
      {2, 7, 7, 4, 2, 8, true, 3, 0},    // the brief's case: chunk 3, S = 7
      {1, 6, 6, 3, 1, 4, false, 0, 0},   // non-causal, GQA 3
      {1, 3, 9, 2, 1, 4, true, 4, 6},    // KV-cache style offset inside a chunked layer
      {1, 128, 128, 2, 1, 4, true, 64, 0},  // chunks of one tile (the training layout's own kernel path)
  };
  Rng rng(14);
  for (const Case& c : cases) {
    Inputs in = make_inputs(c, DType::F64, rng);
    Tensor scale = Tensor::empty({1}, DType::F64);
    tvtest::set_at(scale, 0, 0.7);
    Tensor probe = tvtest::rand_tensor({c.B, c.Sq, c.H, c.Dh}, DType::F64, rng);  // loss = sum(probe * out)
    auto loss = [&] {
      Tensor out = Tensor::empty({c.B, c.Sq, c.H, c.Dh}, DType::F64);
      ops::attention_fwd(out, nullptr, in.q, in.k, in.v, params_of(c, at(scale, 0)));
      return tvtest::dot(out, probe);
    };
    Tensor out = Tensor::empty({c.B, c.Sq, c.H, c.Dh}, DType::F64), lse = Tensor::empty({c.B, c.H, c.Sq}, DType::F64);
    ops::attention_fwd(out, &lse, in.q, in.k, in.v, params_of(c, at(scale, 0)));
    Tensor dq = Tensor::zeros(in.q.shape(), DType::F64), dk = Tensor::zeros(in.k.shape(), DType::F64),
           dv = Tensor::zeros(in.v.shape(), DType::F64);
    double ds = 0;
    ops::attention_bwd(dq, dk, dv, &ds, probe, in.q, in.k, in.v, out, lse, params_of(c, at(scale, 0)));
    Tensor dscale = Tensor::empty({1}, DType::F64);
    tvtest::set_at(dscale, 0, ds);
    tvtest::expect_gradients(loss, {{"q", &in.q, &dq}, {"k", &in.k, &dk}, {"v", &in.v, &dv}, {"scale", &scale, &dscale}});
  }
}

TV_OP_TEST(attention, gradcheck, BackwardMatchesNaiveAcrossTiles) {
  // Several query tiles and key blocks, chunk boundaries inside tiles, f32 and f64; gradients accumulate.
  const std::vector<Case> cases = {
      {1, 150, 150, 4, 2, 16, true, 50, 0},
      {2, 70, 70, 3, 1, 8, false, 0, 0},
      {1, 5, 150, 4, 2, 16, true, 64, 120},
      {1, 130, 130, 2, 2, 32, true, 0, 0},
      {2, 128, 128, 4, 2, 16, true, 64, 0},  // chunks of one tile (own kernel path)
  };
  Rng rng(15);
  for (const Case& c : cases)
    for (DType dt : {DType::F32, DType::F64}) {
      Inputs in = make_inputs(c, dt, rng, 1.5);
      Tensor dout = tvtest::rand_tensor({c.B, c.Sq, c.H, c.Dh}, dt, rng);
      double scale = 0.4;
      ops::AttentionParams p = params_of(c, scale);
      Tensor out = Tensor::empty({c.B, c.Sq, c.H, c.Dh}, dt), lse = Tensor::empty({c.B, c.H, c.Sq}, dt);
      ops::attention_fwd(out, &lse, in.q, in.k, in.v, p);
      // Start from a non-zero gradient to check that the kernel adds to it.
      Tensor dq = Tensor::empty(in.q.shape(), dt), dk = Tensor::zeros(in.k.shape(), dt), dv = Tensor::zeros(in.v.shape(), dt);
      dq.fill_(0.5);
      double ds = 1.0;
      ops::attention_bwd(dq, dk, dv, &ds, dout, in.q, in.k, in.v, out, lse, p);
      Tensor rq, rk, rv;
      double rs = 0;
      naive_backward(c, in.q.to(DType::F64), in.k.to(DType::F64), in.v.to(DType::F64), dout.to(DType::F64), scale, rq,
                     rk, rv, rs);
      for (int64_t i = 0; i < rq.numel(); ++i) tvtest::set_at(rq, i, at(rq, i) + 0.5);
      double tol = dt == DType::F32 ? 1e-4 : 1e-11;
      std::string what = "attention backward S=" + std::to_string(c.Sq) + (dt == DType::F32 ? " f32" : " f64");
      tvtest::expect_close(dq.to(DType::F64), rq, tol, tol, what + " dq");
      tvtest::expect_close(dk.to(DType::F64), rk, tol, tol, what + " dk");
      tvtest::expect_close(dv.to(DType::F64), rv, tol, tol, what + " dv");
      EXPECT_NEAR(ds, rs + 1.0, tol * (1 + std::abs(rs)) * 10) << what << " dscale";
      // Skipped gradients: only dv asked for.
      Tensor none, dv2 = Tensor::zeros(in.v.shape(), dt);
      ops::attention_bwd(none, none, dv2, nullptr, dout, in.q, in.k, in.v, out, lse, p);
      tvtest::expect_close(dv2.to(DType::F64), rv, tol, tol, what + " dv alone");
    }
}

// The temperature gradient sums dS * S over every visible pair (2M here). Its terms cancel, so even
// exact sums of the float terms differ from double by a few 1e-6; but sums kept in float across a
// whole work unit drift further (3.3e-5 measured here), which the kernel avoids by adding per-block
// partials in double (8e-6).
TV_OP_TEST(attention, gradcheck, ScaleGradientStaysAccurateAtLongSequences) {
  const Case c{1, 2048, 2048, 4, 1, 32, true, 0, 0};
  Rng rng(16);
  Inputs in = make_inputs(c, DType::F64, rng, 1.0);
  Tensor dout = tvtest::rand_tensor({c.B, c.Sq, c.H, c.Dh}, DType::F64, rng);
  double ds[2] = {0, 0};
  int i = 0;
  for (DType dt : {DType::F64, DType::F32}) {
    Tensor q = in.q.to(dt), k = in.k.to(dt), v = in.v.to(dt), d = dout.to(dt);
    ops::AttentionParams p = params_of(c, 0.2);
    Tensor out = Tensor::empty(q.shape(), dt), lse = Tensor::empty({c.B, c.H, c.Sq}, dt), none;
    ops::attention_fwd(out, &lse, q, k, v, p);
    ops::attention_bwd(none, none, none, &ds[i++], d, q, k, v, out, lse, p);
  }
  EXPECT_LT(std::abs(ds[1] - ds[0]), 1.5e-5 * std::abs(ds[0])) << "f32 " << ds[1] << " vs f64 " << ds[0];
}

// GradMode::Overwrite: buffers full of NaN come out as zeros + accumulate would make them, on the general
// path and on the chunk-aligned one.
TV_OP_TEST(attention, forward, OverwriteModeEqualsAccumulatingIntoZeros) {
  const std::vector<Case> cases = {{1, 150, 150, 4, 2, 16, true, 50, 0}, {2, 128, 128, 4, 2, 16, true, 64, 0}};
  Rng rng(16);
  for (const Case& c : cases)
    for (DType dt : {DType::F32, DType::F64}) {
      Inputs in = make_inputs(c, dt, rng, 1.5);
      Tensor dout = tvtest::rand_tensor({c.B, c.Sq, c.H, c.Dh}, dt, rng);
      ops::AttentionParams p = params_of(c, 0.4);
      Tensor out = Tensor::empty({c.B, c.Sq, c.H, c.Dh}, dt), lse = Tensor::empty({c.B, c.H, c.Sq}, dt);
      ops::attention_fwd(out, &lse, in.q, in.k, in.v, p);
      Tensor aq = Tensor::zeros(in.q.shape(), dt), ak = Tensor::zeros(in.k.shape(), dt);
      Tensor av = Tensor::zeros(in.v.shape(), dt);
      Tensor oq = Tensor::empty(in.q.shape(), dt), ok = Tensor::empty(in.k.shape(), dt), ov = Tensor::empty(in.v.shape(), dt);
      for (Tensor* t : {&oq, &ok, &ov}) t->fill_(std::nan(""));
      double ds_acc = 0, ds_over = 0;
      ops::attention_bwd(aq, ak, av, &ds_acc, dout, in.q, in.k, in.v, out, lse, p);
      ops::attention_bwd(oq, ok, ov, &ds_over, dout, in.q, in.k, in.v, out, lse, p, ops::GradMode::Overwrite);
      tvtest::expect_close(oq, aq, 0, 0, "dq");
      tvtest::expect_close(ok, ak, 0, 0, "dk");
      tvtest::expect_close(ov, av, 0, 0, "dv");
      EXPECT_EQ(ds_over, ds_acc) << "dscale still accumulates";
    }
}
