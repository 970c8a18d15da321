// KV-cache decoding must equal full recomputation: same logits at every position (the chunked mask of
// RoPE layers and the global mask of NoPE layers included), hence the same greedy tokens.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "core/rng.h"
#include "model/llama.h"
#include "model/sampler.h"

using namespace tv;

namespace {

ModelConfig tiny_config() {
  ModelConfig mc;
  mc.vocab_size = 53;
  mc.d_model = 32;
  mc.n_heads = 4;
  mc.n_kv_heads = 2;
  mc.n_layers = 4;
  mc.num_experts = 4;
  mc.num_experts_per_tok = 2;
  mc.d_expert = 24;
  mc.d_ff_standard = 40;
  mc.chunk_size = 5;
  mc.max_seq_len = 32;
  return mc;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  double m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, double(std::abs(a.data<float>()[i] - b.data<float>()[i])));
  return m;
}

}  // namespace

TEST(KVCache, IncrementalLogitsEqualFullRecomputation) {
  ParamStore params;
  Llama model(tiny_config(), params);
  Rng rng(5);
  model.init_weights(rng);
  // A non-default temperature so the NoPE path is exercised with its learnable scale.
  for (Param& p : params.all())
    if (p.name.find("temp_scale") != std::string::npos) p.value.data<float>()[0] = 0.3f;
  const int64_t S = 17;  // longer than three chunks of 5
  std::vector<int32_t> ids(S);
  for (auto& t : ids) t = int32_t(rng.below(53));
  Tensor full = model.forward(model.embed(Tensor::from_i32({S}, ids)), 1, S, false);

  // Prefill 7 tokens (across a chunk boundary), then one at a time.
  KVCache cache = model.make_cache(S);
  Tensor pre = model.forward_cached(model.embed(Tensor::from_i32({7}, std::vector<int32_t>(ids.begin(), ids.begin() + 7))),
                                    cache, true);
  EXPECT_LE(max_abs_diff(pre, full.narrow(0, 0, 7).contiguous()), 1e-5);
  for (int64_t s = 7; s < S; ++s) {
    Tensor step = model.forward_cached(model.embed(Tensor::from_i32({1}, {ids[s]})), cache);
    EXPECT_LE(max_abs_diff(step, full.narrow(0, s, 1).contiguous()), 1e-5) << "position " << s;
  }
  EXPECT_EQ(cache.len, S);
  EXPECT_THROW(model.forward_cached(model.embed(Tensor::from_i32({1}, {1})), cache), Error);
}

TEST(KVCache, GreedyTokensEqualRecomputation) {
  ParamStore params;
  Llama model(tiny_config(), params);
  Rng rng(6);
  model.init_weights(rng);
  std::vector<int32_t> prompt = {3, 14, 15, 9, 2, 6};
  const int new_tokens = 14;
  SamplerOptions greedy;
  Rng srng(0);

  std::vector<int32_t> a = prompt;
  for (int i = 0; i < new_tokens; ++i) {
    int64_t S = int64_t(a.size());
    Tensor logits = model.forward(model.embed(Tensor::from_i32({S}, a)), 1, S, false);
    std::vector<float> row(logits.data<float>() + (S - 1) * 53, logits.data<float>() + S * 53);
    a.push_back(sample_next(row, a, greedy, srng));
  }

  std::vector<int32_t> b = prompt;
  KVCache cache = model.make_cache(int64_t(prompt.size()) + new_tokens);
  Tensor logits = model.forward_cached(model.embed(Tensor::from_i32({int64_t(prompt.size())}, prompt)), cache);
  for (int i = 0; i < new_tokens; ++i) {
    std::vector<float> row(logits.data<float>(), logits.data<float>() + 53);
    int32_t next = sample_next(row, b, greedy, srng);
    b.push_back(next);
    logits = model.forward_cached(model.embed(Tensor::from_i32({1}, {next})), cache);
  }
  EXPECT_EQ(a, b);
}

// Logits for selected rows only (phases 2-4 project just the labelled positions) must equal the same rows
// of the full projection, and give the gradients the full path gives when the other rows' dlogits are 0.
TEST(LogitRows, SelectedRowsEqualFullProjectionAndGradients) {
  ParamStore params;
  Llama model(tiny_config(), params);
  Rng rng(9);
  model.init_weights(rng);
  const int64_t B = 2, S = 9, V = 53;
  std::vector<int32_t> ids(B * S);
  for (auto& t : ids) t = int32_t(rng.below(V));
  Tensor x0 = model.embed(Tensor::from_i32({B * S}, ids));
  Tensor rows = Tensor::from_i32({5}, {1, 4, 8, 10, 17});
  Tensor dsel = Tensor::empty({5, V});
  for (int64_t i = 0; i < dsel.numel(); ++i) dsel.data<float>()[i] = float(rng.uniform(-1, 1));

  params.zero_grad();
  Tensor full = model.forward(x0, B, S, true);
  Tensor dfull = Tensor::zeros({B * S, V});
  for (int64_t i = 0; i < 5; ++i)
    for (int64_t v = 0; v < V; ++v)
      dfull.data<float>()[rows.data<int32_t>()[i] * V + v] = dsel.data<float>()[i * V + v];
  Tensor dx_full = model.backward(dfull, 0.0, true);
  std::vector<Tensor> g_full;
  for (Param& p : params.all()) g_full.push_back(p.grad_or_null()->clone());

  params.zero_grad();
  Tensor sel = model.forward(x0, B, S, true, &rows);
  ASSERT_EQ(sel.shape(), (Shape{5, V}));
  // Each result within 1e-6 of its tensor's largest value: the projection of 5 rows and of 18 may block
  // the products differently, a few ulps apart on one AVX-512 CPU (gradients 2.9e-6 apart at a scale of
  // 9.4) and identical on another.
  auto tol = [](const Tensor& t) {
    float scale = 0;
    for (int64_t i = 0; i < t.numel(); ++i) scale = std::max(scale, std::fabs(t.data<float>()[i]));
    return 1e-6 * std::max(1.0f, scale);
  };
  const double logit_tol = tol(full);
  for (int64_t i = 0; i < 5; ++i)
    for (int64_t v = 0; v < V; ++v)
      EXPECT_NEAR(sel.data<float>()[i * V + v], full.data<float>()[rows.data<int32_t>()[i] * V + v], logit_tol);
  Tensor dx_sel = model.backward(dsel, 0.0, true);
  EXPECT_LE(max_abs_diff(dx_sel, dx_full), tol(dx_full));
  size_t k = 0;
  for (Param& p : params.all()) {
    EXPECT_LE(max_abs_diff(*p.grad_or_null(), g_full[k]), tol(g_full[k])) << p.name;
    ++k;
  }
}
