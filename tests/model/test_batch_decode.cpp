// The batched decode step against sequences decoded one by one: Llama::forward_decode of several
// sequences of different lengths (one with an image-like prefix) against forward_cached of each alone,
// and step_batch of generators with different options against each generator run alone: the same tokens
// and stop reasons, greedy and seeded sampling, penalties, stop ids and sequences, token limits, full
// contexts, states finishing at different steps, a state without the KV cache in the batch.
//
// Not bit-exact: the batched linear layers multiply [n, D] rows where one sequence alone multiplies
// [1, D], and the GEMM may sum in another order for another row count; attention_decode_fwd sums in
// another order than the tiled attention_fwd of forward_cached. The logits agree to float rounding
// (stated below), and the tokens, which follow from them, agree exactly.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "core/rng.h"
#include "model/generator.h"
#include "model/llama.h"

using namespace tv;

namespace {

// Every layer kind: layers 1 and 3 MoE (4 experts, top 2), layer 3 NoPE (ratio 0.75), chunks of 5 so
// that the sequences cross several chunk boundaries.
ModelConfig tiny_config() {
  ModelConfig mc;
  mc.vocab_size = 61;
  mc.d_model = 32;
  mc.n_heads = 4;
  mc.n_kv_heads = 2;
  mc.n_layers = 4;
  mc.num_experts = 4;
  mc.num_experts_per_tok = 2;
  mc.d_expert = 24;
  mc.d_ff_standard = 40;
  mc.chunk_size = 5;
  mc.max_seq_len = 64;
  return mc;
}

struct TinyModel {
  ParamStore params;
  Llama model;
  TinyModel() : model(tiny_config(), params) {
    Rng rng(17);
    model.init_weights(rng);
    // A non-default NoPE temperature, so that its scale is exercised.
    for (Param& p : params.all())
      if (p.name.find("temp_scale") != std::string::npos) p.value.data<float>()[0] = 0.3f;
  }
};

std::vector<int32_t> random_ids(Rng& rng, int64_t n, int64_t V) {
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (auto& t : ids) t = int32_t(rng.below(uint64_t(V)));
  return ids;
}

// max |a - b| / max |b|.
double rel_diff(const float* a, const float* b, int64_t n) {
  double d = 0, m = 0;
  for (int64_t i = 0; i < n; ++i) {
    d = std::max(d, double(std::abs(a[i] - b[i])));
    m = std::max(m, double(std::abs(b[i])));
  }
  return d / m;
}

}  // namespace

TEST(BatchDecode, ForwardDecodeEqualsEachSequenceAlone) {
  TinyModel t;
  Llama& m = t.model;
  const ModelConfig& mc = m.config();
  Rng rng(3);
  // Prompts of lengths 1, 4, 9 and 13, the third after a prefix of 6 embedding rows (an image's place).
  const std::vector<int64_t> lens = {1, 4, 9, 13};
  const int64_t n = int64_t(lens.size()), steps = 12, cap = 40;
  std::vector<KVCache> ref(static_cast<size_t>(n)), bat(static_cast<size_t>(n));
  std::vector<std::vector<int32_t>> next(static_cast<size_t>(n));
  Tensor prefix = Tensor::empty({6, mc.d_model});
  for (int64_t i = 0; i < prefix.numel(); ++i) prefix.data<float>()[i] = float(rng.normal() * 0.2);
  for (int64_t i = 0; i < n; ++i) {
    std::vector<int32_t> prompt = random_ids(rng, lens[size_t(i)], mc.vocab_size);
    Tensor x0 = m.embed(Tensor::from_i32({lens[size_t(i)]}, prompt));
    if (i == 2) {
      Tensor joined = Tensor::empty({6 + lens[2], mc.d_model});
      joined.narrow(0, 0, 6).copy_from(prefix);
      joined.narrow(0, 6, lens[2]).copy_from(x0);
      x0 = joined;
    }
    ref[size_t(i)] = m.make_cache(cap);
    bat[size_t(i)] = m.make_cache(cap);
    m.forward_cached(x0, ref[size_t(i)]);
    m.forward_cached(x0, bat[size_t(i)]);
    next[size_t(i)] = random_ids(rng, steps, mc.vocab_size);
  }
  double worst = 0;
  for (int64_t s = 0; s < steps; ++s) {
    // Rows drop out as their sequences end: row 0 after 5 steps, row 3 after 9.
    std::vector<int32_t> tokens;
    std::vector<KVCache*> caches;
    std::vector<int64_t> rows;
    for (int64_t i = 0; i < n; ++i) {
      if ((i == 0 && s >= 5) || (i == 3 && s >= 9)) continue;
      tokens.push_back(next[size_t(i)][size_t(s)]);
      caches.push_back(&bat[size_t(i)]);
      rows.push_back(i);
    }
    Tensor logits = m.forward_decode(tokens, caches).contiguous();
    ASSERT_EQ(logits.size(0), int64_t(rows.size()));
    for (size_t r = 0; r < rows.size(); ++r) {
      const int64_t i = rows[r];
      Tensor one = m.forward_cached(m.embed(Tensor::from_i32({1}, {next[size_t(i)][size_t(s)]})), ref[size_t(i)]);
      EXPECT_EQ(bat[size_t(i)].len, ref[size_t(i)].len);
      const double d = rel_diff(logits.data<float>() + int64_t(r) * mc.vocab_size, one.data<float>(), mc.vocab_size);
      worst = std::max(worst, d);
      EXPECT_LE(d, 5e-6) << "step " << s << " row " << i;
    }
  }
  // The caches hold the same keys and values.
  for (int64_t i = 0; i < n; ++i)
    for (int64_t l = 0; l < mc.n_layers; ++l) {
      const int64_t used = ref[size_t(i)].len * mc.n_kv_heads * mc.d_head();
      EXPECT_LE(rel_diff(bat[size_t(i)].k[size_t(l)].data<float>(), ref[size_t(i)].k[size_t(l)].data<float>(), used),
                5e-6);
      EXPECT_LE(rel_diff(bat[size_t(i)].v[size_t(l)].data<float>(), ref[size_t(i)].v[size_t(l)].data<float>(), used),
                5e-6);
    }
  std::printf("forward_decode vs forward_cached: worst relative logit difference %.2e\n", worst);
}

TEST(BatchDecode, RefusesSharedFullOrForeignCaches) {
  TinyModel t;
  Llama& m = t.model;
  KVCache a = m.make_cache(3), b = m.make_cache(1);
  EXPECT_ANY_THROW(m.forward_decode({1, 2}, {&a, &a}));  // one cache twice
  EXPECT_ANY_THROW(m.forward_decode({1}, {&a, &b}));     // a cache per token
  EXPECT_ANY_THROW(m.forward_decode({}, {}));
  EXPECT_ANY_THROW(m.forward_decode({61}, {&a}));        // outside the vocabulary
  EXPECT_NO_THROW(m.forward_decode({1}, {&b}));
  EXPECT_ANY_THROW(m.forward_decode({1}, {&b}));         // full
  KVCache foreign;
  EXPECT_ANY_THROW(m.forward_decode({1}, {&foreign}));
}

namespace {

struct Case {
  GenerationOptions opt;
  Tensor prefix;
  std::vector<int32_t> prompt;
  int64_t capacity = 0;
};

}  // namespace

TEST(BatchDecode, StepBatchEqualsEachGeneratorAlone) {
  TinyModel t;
  Llama& m = t.model;
  const ModelConfig& mc = m.config();
  Rng rng(29);
  std::vector<Case> cases(7);
  for (Case& c : cases) {
    c.opt.max_new_tokens = 20;
    c.prompt = random_ids(rng, 2 + int64_t(rng.below(9)), mc.vocab_size);
  }
  // 0: greedy. 1: seeded sampling (temperature, top-k, top-p). 2: repetition, frequency and presence
  // penalties. 3: a stop id (the token greedy decoding gives at its 4th step) and a shorter limit.
  // 4: a stop sequence (greedy's tokens 6-7), after a prefix. 5: a context that fills up. 6: no KV cache.
  cases[1].opt.sampling.temperature = 0.9;
  cases[1].opt.sampling.top_k = 20;
  cases[1].opt.sampling.top_p = 0.9;
  cases[1].opt.seed = 1234;
  cases[2].opt.sampling.repetition_penalty = 1.3;
  cases[2].opt.frequency_penalty = 0.5;
  cases[2].opt.presence_penalty = 0.2;
  cases[2].opt.sampling.temperature = 0.7;
  cases[2].opt.seed = 99;
  cases[4].prefix = Tensor::empty({5, mc.d_model});
  for (int64_t i = 0; i < cases[4].prefix.numel(); ++i) cases[4].prefix.data<float>()[i] = float(rng.normal() * 0.2);
  cases[5].capacity = int64_t(cases[5].prompt.size()) + 9;
  cases[6].opt.use_cache = false;
  cases[6].opt.max_new_tokens = 11;
  {
    Generator g(m, cases[3].opt);
    GenerationState s = g.start(cases[3].prefix, cases[3].prompt);
    std::vector<int32_t> out = g.run(s);
    ASSERT_GE(out.size(), 4u);
    cases[3].opt.stop_ids = {out[3]};
    cases[3].opt.max_new_tokens = 15;
  }
  {
    Generator g(m, cases[4].opt);
    GenerationState s = g.start(cases[4].prefix, cases[4].prompt);
    std::vector<int32_t> out = g.run(s);
    ASSERT_GE(out.size(), 8u);
    cases[4].opt.stop_sequences = {{out[6], out[7]}};
  }
  // Each alone.
  std::vector<std::vector<int32_t>> alone;
  std::vector<StopReason> alone_stop;
  for (const Case& c : cases) {
    Generator g(m, c.opt);
    GenerationState s = g.start(c.prefix, c.prompt, c.capacity);
    alone.push_back(g.run(s));
    alone_stop.push_back(s.stop);
  }
  // All together; the fifth joins three steps late (continuous batching).
  std::vector<std::unique_ptr<Generator>> gens;
  std::vector<GenerationState> states(cases.size());
  std::vector<std::vector<int32_t>> returned(cases.size());
  for (size_t i = 0; i < cases.size(); ++i) gens.push_back(std::make_unique<Generator>(m, cases[i].opt));
  auto start = [&](size_t i) { states[i] = gens[i]->start(cases[i].prefix, cases[i].prompt, cases[i].capacity); };
  for (size_t i = 0; i < cases.size(); ++i)
    if (i != 4) start(i);
  int steps = 0;
  std::vector<int> finished_at(cases.size(), -1);
  while (true) {
    if (steps == 3) start(4);
    std::vector<BatchEntry> batch;
    std::vector<size_t> which;
    for (size_t i = 0; i < cases.size(); ++i)
      if ((i != 4 || steps >= 3) && !states[i].done()) {
        batch.push_back({gens[i].get(), &states[i]});
        which.push_back(i);
      }
    if (batch.empty()) break;
    step_batch(batch);
    for (size_t r = 0; r < batch.size(); ++r) {
      if (batch[r].token >= 0) returned[which[r]].push_back(batch[r].token);
      if (states[which[r]].done() && finished_at[which[r]] < 0) finished_at[which[r]] = steps;
    }
    ++steps;
  }
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(states[i].generated, alone[i]) << "case " << i;
    EXPECT_EQ(states[i].stop, alone_stop[i]) << "case " << i;
  }
  EXPECT_EQ(alone_stop[3], StopReason::StopId);
  EXPECT_EQ(alone_stop[4], StopReason::StopSequence);
  EXPECT_EQ(alone_stop[5], StopReason::ContextFull);
  EXPECT_EQ(alone_stop[0], StopReason::MaxTokens);
  // The returned tokens are step()'s: what was generated, plus a cut stop sequence's tokens.
  EXPECT_EQ(returned[0], alone[0]);
  EXPECT_EQ(returned[4].size(), alone[4].size() + 2);
  // They finished at different steps.
  std::vector<int> distinct = finished_at;
  std::sort(distinct.begin(), distinct.end());
  EXPECT_GE(std::unique(distinct.begin(), distinct.end()) - distinct.begin(), 4);
  // Stepping a done state changes nothing.
  std::vector<int32_t> before = states[0].generated;
  BatchEntry done{gens[0].get(), &states[0]};
  step_batch(std::span<BatchEntry>(&done, 1));
  EXPECT_EQ(done.token, -1);
  EXPECT_EQ(states[0].generated, before);
}

TEST(BatchDecode, StepBatchRefusesMixedModelsAndRepeatedStates) {
  TinyModel a, b;
  GenerationOptions o;
  Generator ga(a.model, o), gb(b.model, o);
  GenerationState s1 = ga.start(Tensor(), {1, 2}), s2 = gb.start(Tensor(), {3});
  std::vector<BatchEntry> mixed = {{&ga, &s1}, {&gb, &s2}};
  EXPECT_ANY_THROW(step_batch(mixed));
  std::vector<BatchEntry> twice = {{&ga, &s1}, {&ga, &s1}};
  EXPECT_ANY_THROW(step_batch(twice));
}

TEST(BatchDecode, StepsReuseTheirBuffers) {
  // The logits of a step live in the workspace: steps of no more rows than before reuse it.
  TinyModel t;
  Llama& m = t.model;
  std::vector<KVCache> c;
  for (int i = 0; i < 3; ++i) c.push_back(m.make_cache(8));
  const float* first = m.forward_decode({1, 2, 3}, {&c[0], &c[1], &c[2]}).data<float>();
  EXPECT_EQ(m.forward_decode({4, 5}, {&c[0], &c[1]}).data<float>(), first);
  EXPECT_EQ(m.forward_decode({6, 7, 8}, {&c[0], &c[1], &c[2]}).data<float>(), first);
  EXPECT_EQ(c[0].len, 3);
  EXPECT_EQ(c[2].len, 2);
  EXPECT_EQ(m.decode_stats().steps, 3);
  EXPECT_EQ(m.decode_stats().rows, 8);
}
