// The phase-2 assembly against the PyTorch reference (tests/fixtures/vlm, scripts/reference/ref_model.py):
// projector output, logits, loss and projector gradients with the decoder frozen; decoder gradients when it
// trains (phase 3); growing a phase-1 decoder by the <image> row; the label layout.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "data/captions.h"
#include "harness/op_test.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "model/vlm.h"

using namespace tv;
using tvtest::rel_err;

namespace {

const std::string kDir = std::string(TV_FIXTURE_DIR) + "/vlm/";

struct TinyVlm {
  Config cfg = Config::from_file(kDir + "tiny_vlm_config.toml");
  ParamStore params;
  VisionLanguageModel vlm{ModelConfig::from(cfg), VisionConfig::from(cfg), params};
  TinyVlm() {
    ParamStore::LoadReport r = params.load(SafetensorsFile(kDir + "vlm_params.safetensors"));
    EXPECT_GT(r.ignored, 0);  // the original's unused decoder blocks
  }
};

}  // namespace

TEST(VisionLanguageModel, NamesAndFreezing) {
  TinyVlm t;
  EXPECT_EQ(t.vlm.image_token_id(), 67);
  EXPECT_EQ(t.vlm.num_vision_tokens(), 4);
  EXPECT_NE(t.params.find("vision_encoder.proj.0.weight"), nullptr);
  EXPECT_NE(t.params.find("vision_encoder.proj.2.bias"), nullptr);
  EXPECT_NE(t.params.find("vision_encoder.encoder.encoder_layer_1.self_attention.in_proj_weight"), nullptr);
  EXPECT_NE(t.params.find("llm.emb.emb.weight"), nullptr);
  EXPECT_EQ(t.params.at("llm.emb.emb.weight").value.size(0), 68);
  t.vlm.set_phase2_trainable(t.params);
  for (const Param& p : t.params.all()) {
    bool proj = p.name.rfind("vision_encoder.proj.", 0) == 0;
    EXPECT_EQ(p.trainable, proj) << p.name;
    EXPECT_EQ(p.grad_storage.defined(), proj) << p.name << ": frozen parameters hold no gradient";
  }
  EXPECT_EQ(t.params.count(true), 64 * 16 + 64 + 32 * 64 + 32);
}

TEST(VisionLanguageModel, Phase2StepMatchesPyTorch) {
  TinyVlm t;
  t.vlm.set_phase2_trainable(t.params);
  SafetensorsFile step(kDir + "vlm_step.safetensors");
  Tensor pixels = step.get("pixels"), ids = step.get("input_ids"), labels = step.get("labels");
  const int64_t B = ids.size(0);

  Tensor feats = t.vlm.tower().forward(pixels);
  EXPECT_LE(rel_err(feats, step.get("features")), 1e-4);
  Tensor vis = t.vlm.projector().forward(feats.view({B * 4, 16}), false);
  EXPECT_LE(rel_err(vis, step.get("vision_tokens")), 1e-5);
  Tensor logits = t.vlm.forward(feats, ids, false);
  double e_logits = rel_err(logits, step.get("logits"));
  EXPECT_LE(e_logits, 1e-5);

  t.params.zero_grad();
  VlmLoss l = vlm_loss_step(t.vlm, feats, ids, labels, true);
  const double ref = step.get("loss", DType::F64).data<double>()[0];
  EXPECT_NEAR(l.loss, ref, 1e-5 * std::abs(ref));
  EXPECT_EQ(l.tokens, 15);
  double worst = 0;
  for (const char* n : {"vision_encoder.proj.0.weight", "vision_encoder.proj.0.bias", "vision_encoder.proj.2.weight",
                        "vision_encoder.proj.2.bias"}) {
    Param& p = t.params.at(n);
    EXPECT_TRUE(p.has_grad) << n;
    double e = rel_err(*p.grad_or_null(), step.get(std::string("grad.") + n).view(p.value.shape()));
    EXPECT_LE(e, 1e-5) << n;
    worst = std::max(worst, e);
  }
  for (const Param& p : t.params.all()) {
    if (!p.trainable) {
      EXPECT_FALSE(p.has_grad) << p.name << " is frozen but was marked as updated";
    }
  }
  std::printf("vlm parity: logits rel err %.2e, loss %.7f vs %.7f, projector gradients worst rel err %.2e\n", e_logits,
              l.loss, ref, worst);
}

TEST(VisionLanguageModel, DecoderGradientsMatchPyTorchWhenTrainable) {
  // Phase 3 trains the decoder too: every used decoder parameter's gradient, and the projector's gradients
  // are the same as with the decoder frozen.
  TinyVlm frozen, open;
  frozen.vlm.set_phase2_trainable(frozen.params);
  open.params.set_trainable("", true);
  open.params.set_trainable("vision_encoder.", false);
  open.params.set_trainable("vision_encoder.proj.", true);
  SafetensorsFile step(kDir + "vlm_step.safetensors");
  Tensor feats = frozen.vlm.tower().forward(step.get("pixels"));
  Tensor ids = step.get("input_ids"), labels = step.get("labels");
  frozen.params.zero_grad();
  open.params.zero_grad();
  vlm_loss_step(frozen.vlm, feats, ids, labels, true);
  vlm_loss_step(open.vlm, feats, ids, labels, true);
  int checked = 0;
  double worst = 0;
  for (Param& p : open.params.all()) {
    if (!p.trainable) continue;
    if (p.name.rfind("vision_encoder.proj.", 0) == 0) {
      EXPECT_EQ(rel_err(*p.grad_or_null(), *frozen.params.at(p.name).grad_or_null()), 0.0) << p.name;
      continue;
    }
    if (!step.has("grad." + p.name)) {
      EXPECT_TRUE(p.name.find("temp_scale") != std::string::npos || p.name.find("experts.") != std::string::npos ||
                  p.name.find("moe_ffn_block") != std::string::npos)
          << "fixture lacks the gradient of " << p.name;
      continue;
    }
    double e = rel_err(*p.grad_or_null(), step.get("grad." + p.name).view(p.value.shape()));
    EXPECT_LE(e, 1e-5) << p.name;
    worst = std::max(worst, e);
    ++checked;
  }
  EXPECT_GE(checked, 60);
  std::printf("vlm parity: %d decoder gradients, worst rel err %.2e\n", checked, worst);
}

TEST(VisionLanguageModel, GrowsAPhase1DecoderByTheImageRow) {
  Config cfg = Config::from_file(kDir + "tiny_vlm_config.toml");
  ParamStore params;
  VisionLanguageModel vlm(ModelConfig::from(cfg), VisionConfig::from(cfg), params);
  SafetensorsFile text(std::string(TV_FIXTURE_DIR) + "/model/tiny_params.safetensors");
  Rng rng(11);
  ParamStore::LoadReport r = vlm.load_llm(text, rng);
  EXPECT_GT(r.ignored, 0);
  for (const char* n : {"emb.emb.weight", "proj_vocab.weight"}) {
    Tensor mine = params.at(std::string("llm.") + n).value, file = text.get(n);
    ASSERT_EQ(mine.size(0), 68);
    EXPECT_EQ(std::memcmp(mine.raw(), file.raw(), file.nbytes()), 0) << n << ": rows 0..66 are the phase-1 rows";
    double ss = 0;
    for (int64_t i = 0; i < 32; ++i) ss += std::pow(double(mine.data<float>()[67 * 32 + i]), 2);
    double rms = std::sqrt(ss / 32);
    // N(0, 32^-0.5) for the embedding row, N(0, 0.02) for the output row.
    if (std::string(n) == "emb.emb.weight")
      EXPECT_TRUE(rms > 0.08 && rms < 0.35) << rms;
    else
      EXPECT_TRUE(rms > 0.005 && rms < 0.04) << rms;
  }
  // A decoder that already has the <image> row (a phase-2 checkpoint) loads as is.
  ParamStore p2;
  VisionLanguageModel v2(ModelConfig::from(cfg), VisionConfig::from(cfg), p2);
  SafetensorsFile phase2(kDir + "vlm_params.safetensors");
  v2.load_llm(phase2, rng);
  Tensor want = phase2.get("llm.emb.emb.weight"), got = p2.at("llm.emb.emb.weight").value;
  EXPECT_EQ(std::memcmp(want.raw(), got.raw(), want.nbytes()), 0);
  // A decoder of another vocabulary is refused, naming the tensor and the key.
  Config other = cfg;
  other.set_override("vocab_size=70");
  ParamStore p3;
  VisionLanguageModel v3(ModelConfig::from(other), VisionConfig::from(other), p3);
  try {
    v3.load_llm(text, rng);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("vocab_size"), std::string::npos) << e.what();
  }
}

TEST(VisionLanguageModel, LabelLayoutMatchesTheFixture) {
  // caption_batch on the fixture's unpadded rows reproduces its input_ids and labels, and the logit at
  // position P - 1 + t gets ids[t + 1] as target.
  SafetensorsFile step(kDir + "vlm_step.safetensors");
  Tensor ids = step.get("input_ids"), labels = step.get("labels");
  CaptionTokens tok;
  tok.offsets.push_back(0);
  for (int64_t b = 0; b < 2; ++b) {
    for (int64_t s = 0; s < 10; ++s) {
      int32_t v = ids.data<int32_t>()[b * 10 + s];
      if (v == 3) break;
      tok.ids.push_back(v);
    }
    tok.offsets.push_back(int64_t(tok.ids.size()));
  }
  CaptionFormat f;
  f.image_id = 67;
  f.eos_id = 2;
  f.pad_id = 3;
  f.max_seq_len = 10;
  std::vector<int32_t> bi, bl;
  caption_batch(tok, {0, 1}, f, bi, bl);
  EXPECT_EQ(std::memcmp(bi.data(), ids.raw(), ids.nbytes()), 0);
  EXPECT_EQ(std::memcmp(bl.data(), labels.raw(), labels.nbytes()), 0);
  Tensor t = vlm_targets(labels, 4);
  ASSERT_EQ(t.numel(), 2 * 13);
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t p = 0; p < 13; ++p) {
      int32_t want = (p >= 3 && p < 12) ? labels.data<int32_t>()[b * 10 + p - 3 + 1] : -100;
      EXPECT_EQ(t.data<int32_t>()[b * 13 + p], want) << b << "," << p;
    }
}
