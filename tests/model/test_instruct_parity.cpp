// Phase 3 against the PyTorch reference (tests/fixtures/instruct/instruct_step.safetensors, written by
// scripts/fixtures/instruct_fixtures.py): the loss and the gradients of the projector and of every used
// decoder parameter, with the batch padded to instruct_max_seq_len as the original pads it and padded only
// to its longest row (the same loss), through the one fused output layer and loss.
#include <gtest/gtest.h>

#include <cmath>

#include "harness/op_test.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "model/vlm.h"

using namespace tv;
using tvtest::rel_err;

namespace {

const std::string kVlm = std::string(TV_FIXTURE_DIR) + "/vlm/";
const std::string kStep = std::string(TV_FIXTURE_DIR) + "/instruct/instruct_step.safetensors";

struct TinyVlm {
  Config cfg = Config::from_file(kVlm + "tiny_vlm_config.toml");
  ParamStore params;
  VisionLanguageModel vlm{ModelConfig::from(cfg), VisionConfig::from(cfg), params};
  TinyVlm() {
    params.load(SafetensorsFile(kVlm + "vlm_params.safetensors"));
    vlm.set_phase3_trainable(params);
  }
};

// Columns [0, S) of an i32 [B, S0] tensor.
Tensor crop(const Tensor& t, int64_t S) {
  const int64_t B = t.size(0), S0 = t.size(1);
  std::vector<int32_t> v;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < S; ++s) v.push_back(t.data<int32_t>()[b * S0 + s]);
  return Tensor::from_i32({B, S}, v);
}

}  // namespace

TEST(InstructParity, TrainableSetIsProjectorAndDecoder) {
  TinyVlm t;
  for (const Param& p : t.params.all()) {
    const bool tower = p.name.rfind("vision_encoder.", 0) == 0 && p.name.rfind("vision_encoder.proj.", 0) != 0;
    EXPECT_EQ(p.trainable, !tower) << p.name;
  }
}

TEST(InstructParity, LossAndGradientsMatchPyTorch) {
  SafetensorsFile step(kStep);
  Tensor ids = step.get("input_ids"), labels = step.get("labels"), lengths = step.get("lengths");
  const int64_t S_max = ids.size(1);
  const int64_t S_batch = std::max(lengths.data<int32_t>()[0], lengths.data<int32_t>()[1]);
  ASSERT_LT(S_batch, S_max) << "the fixture should have padding to drop";
  const double ref = step.get("loss", DType::F64).data<double>()[0];
  for (bool pad_to_max : {true, false}) {
    SCOPED_TRACE(pad_to_max ? "padded to instruct_max_seq_len" : "padded to the batch");
    TinyVlm t;
    Tensor feats = t.vlm.tower().forward(step.get("pixels"));
    EXPECT_LE(rel_err(feats, step.get("features")), 1e-4);
    const int64_t S = pad_to_max ? S_max : S_batch;
    t.params.zero_grad();
    VlmLoss l = vlm_loss_step(t.vlm, feats, crop(ids, S), crop(labels, S), true);
    EXPECT_LE(std::abs(l.loss - ref), 1e-5 * std::abs(ref)) << l.loss << " vs " << ref;
    int checked = 0;
    double worst = 0;
    for (Param& p : t.params.all()) {
      if (!p.trainable) {
        EXPECT_FALSE(p.has_grad) << p.name;
        continue;
      }
      if (!step.has("grad." + p.name)) {  // blocks the original builds but never runs
        EXPECT_TRUE(p.grad_or_null() == nullptr || !p.has_grad ||
                    rel_err(*p.grad_or_null(), Tensor::zeros(p.value.shape())) == 0)
            << p.name << " has a gradient the reference lacks";
        continue;
      }
      ASSERT_TRUE(p.has_grad) << p.name;
      const double e = rel_err(*p.grad_or_null(), step.get("grad." + p.name).view(p.value.shape()));
      EXPECT_LE(e, 1e-5) << p.name;
      worst = std::max(worst, e);
      ++checked;
    }
    EXPECT_EQ(checked, int(step.names().size()) - 6);  // every gradient of the fixture
    // Per-sequence sums add up to the loss (phase 4 sums log-probs per sequence).
    ASSERT_EQ(l.seq_sum.size(), 2u);
    EXPECT_NEAR((l.seq_sum[0] + l.seq_sum[1]) / double(l.seq_tokens[0] + l.seq_tokens[1]), l.loss, 1e-12);
    std::printf("instruct parity (S = %lld): loss %.7f vs %.7f, %d gradients, worst rel err %.2e\n", (long long)S, l.loss,
                ref, checked, worst);
  }
}
