// The training head (Llama::head_loss: final norm, projection and cross-entropy a chunk of rows at a time,
// fused with their backward) must equal the plain path (forward -> all logits -> cross-entropy -> backward)
// when the rows span several chunks, the last one partial, with ignored targets among them.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>

#include "core/ops.h"
#include "core/rng.h"
#include "model/llama.h"

using namespace tv;

namespace {

ModelConfig small_config() {
  ModelConfig mc;
  mc.vocab_size = 61;
  mc.d_model = 16;
  mc.n_heads = 4;
  mc.n_kv_heads = 2;
  mc.n_layers = 2;
  mc.num_experts = 4;
  mc.num_experts_per_tok = 2;
  mc.d_expert = 8;
  mc.d_ff_standard = 24;
  mc.chunk_size = 8;
  mc.max_seq_len = 200;
  return mc;
}

std::map<std::string, Tensor> grads_of(ParamStore& params) {
  std::map<std::string, Tensor> out;
  for (Param& p : params.all())
    if (p.grad_or_null()) out[p.name] = p.grad_or_null()->clone();
  return out;
}

}  // namespace

TEST(HeadLoss, ChunkedEqualsAllLogitsAtOnce) {
  const int64_t B = 3, S = 200, N = B * S;  // 600 rows: chunks of 256, the last partial
  ParamStore params;
  Llama model(small_config(), params);
  model.set_head_chunk_rows(256);
  Rng rng(11);
  model.init_weights(rng);
  std::vector<int32_t> ids(N), tg(N);
  for (int64_t i = 0; i < N; ++i) {
    ids[size_t(i)] = int32_t(rng.below(61));
    tg[size_t(i)] = i % 7 == 3 ? -100 : int32_t(rng.below(61));
  }
  Tensor tid = Tensor::from_i32({B, S}, ids), ttg = Tensor::from_i32({B, S}, tg);

  // Plain path.
  params.zero_grad();
  Tensor logits = model.forward(model.embed(tid), B, S, true);
  Tensor losses = Tensor::empty({N}), lse = Tensor::empty({N});
  const int64_t count = ops::cross_entropy_fwd(losses, lse, logits, ttg.view({N}));
  double sum = 0;
  for (int64_t i = 0; i < N; ++i) sum += double(losses.data<float>()[i]);
  Tensor dl = Tensor::empty({N});
  dl.fill_(1.0 / double(count));
  Tensor dlogits = Tensor::zeros(logits.shape());
  ops::cross_entropy_bwd(dlogits, dl, logits, ttg.view({N}), lse);
  Tensor dx0_plain = model.backward(dlogits, 0.01, true);
  const double aux_plain = model.aux_loss();
  auto plain = grads_of(params);

  // Chunked path.
  params.zero_grad();
  Tensor x = model.forward_hidden(model.embed(tid), B, S, true);
  Tensor dx;
  Llama::HeadLoss h = model.head_loss(x, ttg.view({N}), &dx);
  Tensor dx0_chunked = model.backward_hidden(dx, 0.01, true);
  auto chunked = grads_of(params);

  EXPECT_EQ(h.count, count);
  EXPECT_NEAR(h.sum, sum, 1e-6 * std::fabs(sum));
  EXPECT_EQ(model.aux_loss(), aux_plain);
  ASSERT_EQ(plain.size(), chunked.size());
  auto rel = [](const Tensor& a, const Tensor& b) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < a.numel(); ++i) {
      num = std::max(num, double(std::fabs(a.data<float>()[i] - b.data<float>()[i])));
      den = std::max(den, double(std::fabs(b.data<float>()[i])));
    }
    return den > 0 ? num / den : num;
  };
  for (auto& [name, g] : plain) EXPECT_LT(rel(chunked.at(name), g), 1e-5) << name;
  EXPECT_LT(rel(dx0_chunked, dx0_plain), 1e-5);
  const Tensor& gw = plain.at("proj_vocab.weight");
  double gmax = 0;
  for (int64_t i = 0; i < gw.numel(); ++i) gmax = std::max(gmax, double(std::fabs(gw.data<float>()[i])));
  EXPECT_GT(gmax, 0.0) << "the head received no gradient";
}
