// Inference weight formats on a tiny decoder with every layer kind: bf16 and q8 logits within a stated
// relative error of fp32 (prefill, on the large-N path, and one-token decode steps, on the streaming
// path), greedy tokens mostly equal, and a converted model refusing to train.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "core/rng.h"
#include "model/generator.h"
#include "model/llama.h"
#include "model/weight_format.h"

using namespace tv;

namespace {

// Every input size a multiple of 32, as q8 needs.
ModelConfig tiny_config() {
  ModelConfig mc;
  mc.vocab_size = 61;
  mc.d_model = 64;
  mc.n_heads = 4;
  mc.n_kv_heads = 2;
  mc.n_layers = 4;
  mc.num_experts = 4;
  mc.num_experts_per_tok = 2;
  mc.d_expert = 32;
  mc.d_ff_standard = 96;
  mc.chunk_size = 8;
  mc.max_seq_len = 64;
  return mc;
}

struct Model {
  ParamStore params;
  Llama llm;
  explicit Model(const ModelConfig& mc) : llm(mc, params) {
    Rng rng(11);
    llm.init_weights(rng);
    // A fresh init's logits are nearly flat, so any rounding flips near-ties: a larger head gives
    // clearer choices, as a trained model has.
    Tensor& w = llm.output().value;
    for (int64_t i = 0; i < w.numel(); ++i) w.data<float>()[i] *= 4.0f;
  }
};

// max |a - b| / max |b|: relative to the logits' scale (tests/harness rel_err's measure).
double rel_err(const Tensor& a, const Tensor& b) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    num = std::max(num, double(std::fabs(a.data<float>()[i] - b.data<float>()[i])));
    den = std::max(den, double(std::fabs(b.data<float>()[i])));
  }
  return num / den;
}

std::vector<int32_t> prompt_ids() {
  std::vector<int32_t> ids(20);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t((i * 17 + 3) % 61);
  return ids;
}

std::vector<int32_t> greedy(Llama& llm, int64_t n) {
  GenerationOptions go;
  go.max_new_tokens = n;
  Generator g(llm, go);
  GenerationState s = g.start(Tensor(), prompt_ids());
  return g.run(s);
}

// The logits of the 20-token prompt at once (large-N path) and of 8 decode steps after it (N = 1).
std::vector<Tensor> logits(Llama& llm) {
  const std::vector<int32_t> ids = prompt_ids();
  std::vector<Tensor> out;
  KVCache cache = llm.make_cache(64);
  out.push_back(llm.forward_cached(llm.embed(Tensor::from_i32({int64_t(ids.size())}, ids)), cache, true));
  for (int32_t t = 0; t < 8; ++t) out.push_back(llm.forward_cached(llm.embed(Tensor::from_i32({1}, {t * 7 % 61})), cache));
  return out;
}

int32_t argmax(const Tensor& logits, int64_t row) {
  const int64_t V = logits.size(1);
  const float* p = logits.data<float>() + row * V;
  return int32_t(std::max_element(p, p + V) - p);
}

// Worst relative logit error of the converted model; the share of positions (of the prompt and the
// decode steps, fed the same tokens) whose most likely next token is fp32's; the greedy continuation's
// tokens equal to fp32's until the first difference (after which the sequences differ).
void check(WeightFormat f, double max_rel, double min_argmax_equal, int64_t min_prefix) {
  Model ref(tiny_config()), conv(tiny_config());
  convert_linear_weights(conv.llm, f);
  for (Param* p : linear_weights(conv.llm)) {
    EXPECT_EQ(p->value.dtype(), weight_format_dtype(f)) << p->name;
    EXPECT_FALSE(p->trainable) << p->name;
  }
  EXPECT_EQ(conv.llm.embedding().value.dtype(), DType::F32);
  const std::vector<Tensor> a = logits(ref.llm), b = logits(conv.llm);
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, rel_err(b[i], a[i]));
  EXPECT_LE(worst, max_rel) << weight_format_name(f);
  EXPECT_GT(worst, 0.0) << weight_format_name(f) << ": the weights were not converted";
  int64_t positions = 0, same = 0;
  for (size_t i = 0; i < a.size(); ++i)
    for (int64_t r = 0; r < a[i].size(0); ++r, ++positions) same += argmax(a[i], r) == argmax(b[i], r);
  EXPECT_GE(double(same) / double(positions), min_argmax_equal) << weight_format_name(f) << ": " << same << " of " << positions;
  const std::vector<int32_t> ga = greedy(ref.llm, 24), gb = greedy(conv.llm, 24);
  ASSERT_EQ(ga.size(), gb.size());
  int64_t prefix = 0;
  while (prefix < int64_t(ga.size()) && ga[size_t(prefix)] == gb[size_t(prefix)]) ++prefix;
  EXPECT_GE(prefix, min_prefix) << weight_format_name(f);
  std::printf("%s: worst relative logit error %.2e, most likely token equal at %lld of %lld positions, greedy equal "
              "for the first %lld of %zu tokens\n", weight_format_name(f), worst, (long long)same, (long long)positions,
              (long long)prefix, ga.size());
  // A converted model runs forward only.
  Tensor ids = Tensor::from_i32({1, 8}, {1, 2, 3, 4, 5, 6, 7, 8});
  EXPECT_THROW(lm_loss_step(conv.llm, ids, ids, 0.0, true), Error);
  EXPECT_NO_THROW(lm_loss_step(conv.llm, ids, ids, 0.0, false));
}

}  // namespace

// bf16 rounds each weight by at most 2^-9 relative; q8 by at most (block max) / 254. Through four
// layers and the head these random-sign errors grow to about 10x the per-weight bound, relative to the
// logits' scale: 2^-9 * 10 = 2%, 4 * 10 = 4% (measured: see the printed figures).
TEST(WeightFormat, Bf16LogitsCloseToFp32) { check(WeightFormat::BF16, 2e-2, 0.9, 4); }
TEST(WeightFormat, Q8LogitsCloseToFp32) { check(WeightFormat::Q8, 4e-2, 0.9, 4); }

TEST(WeightFormat, Q8RefusesInputsThatAreNotWholeBlocksAndLeavesTheModelAsItWas) {
  ModelConfig mc = tiny_config();
  mc.d_expert = 24;  // the experts' down projections take 24 inputs
  Model m(mc);
  try {
    convert_linear_weights(m.llm, WeightFormat::Q8);
    ADD_FAILURE() << "q8 accepted inputs of 24";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("multiple of 32"), std::string::npos) << e.what();
  }
  for (Param* p : linear_weights(m.llm)) EXPECT_EQ(p->value.dtype(), DType::F32) << p->name;
  EXPECT_NO_THROW(convert_linear_weights(m.llm, WeightFormat::BF16));
}

TEST(WeightFormat, ParsesTheOptionNames) {
  EXPECT_EQ(parse_weight_format("bf16"), WeightFormat::BF16);
  EXPECT_EQ(parse_weight_format("q8"), WeightFormat::Q8);
  EXPECT_EQ(parse_weight_format("fp32"), WeightFormat::F32);
  EXPECT_THROW(parse_weight_format("int4"), Error);
}
