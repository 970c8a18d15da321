// The original's torch.save checkpoints load into the same models as the equivalent safetensors files:
// the decoder (load_llama, and grown for phase 2 by load_llm) and torchvision's tower weights.
#include <gtest/gtest.h>

#include <cstring>

#include "io/safetensors.h"
#include "io/torch_file.h"
#include "model/checkpoint.h"
#include "model/vit.h"
#include "model/vlm.h"

using namespace tv;

namespace {

const std::string kFix = std::string(TV_FIXTURE_DIR);
const std::string kPt = kFix + "/torch/tiny_checkpoint.pt", kSt = kFix + "/model/tiny_params.safetensors";
const std::string kConfig = kFix + "/model/tiny_config.toml";

bool bit_equal(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

}  // namespace

TEST(TorchCheckpoint, DecoderFromPtGivesBitIdenticalLogits) {
  auto pt = load_llama(kPt, kConfig), st = load_llama(kSt, kConfig);
  EXPECT_EQ(pt->report.loaded, st->report.loaded);
  EXPECT_EQ(pt->report.ignored, st->report.ignored);
  EXPECT_GT(pt->report.ignored, 0) << "the original's unused blocks are in the file and ignored";
  Tensor ids = SafetensorsFile(kFix + "/model/tiny_step.safetensors").get("input_ids");
  const int64_t B = ids.size(0), S = ids.size(1);
  Tensor a = pt->model->forward(pt->model->embed(ids), B, S, false);
  Tensor b = st->model->forward(st->model->embed(ids), B, S, false);
  EXPECT_TRUE(bit_equal(a, b));
}

TEST(TorchCheckpoint, PtWithoutConfigAsksForOne) {
  try {
    load_llama(kPt, "");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(kPt), std::string::npos) << m;
    EXPECT_NE(m.find("--config"), std::string::npos) << m;
    EXPECT_NE(m.find(".pt"), std::string::npos) << m;
  }
}

TEST(TorchCheckpoint, Phase2GrowsTheDecoderOfAPtLikeThatOfSafetensors) {
  Config cfg = Config::from_file(kFix + "/vlm/tiny_vlm_config.toml");
  auto grown = [&](const TensorSource& file, ParamStore& params) {
    VisionLanguageModel vlm(ModelConfig::from(cfg), VisionConfig::from(cfg), params);
    Rng rng(11);
    return vlm.load_llm(file, rng);
  };
  ParamStore a, b;
  auto ra = grown(TorchFile(kPt), a);
  auto rb = grown(SafetensorsFile(kSt), b);
  EXPECT_EQ(ra.loaded, rb.loaded);
  EXPECT_EQ(ra.ignored, rb.ignored);
  for (const Param& p : a.all()) {
    if (p.name.rfind("llm.", 0) != 0) continue;
    EXPECT_TRUE(bit_equal(p.value, b.at(p.name).value)) << p.name;
  }
}

TEST(TorchCheckpoint, TorchvisionPthLoadsTheTower) {
  VisionConfig vc = VisionConfig::from(Config::from_file(kFix + "/vlm/tiny_vlm_config.toml"));
  ParamStore a, b;
  VisionTower ta(vc, a), tb(vc, b);
  EXPECT_EQ(ta.load(*open_tensor_file(kFix + "/torch/vit_torchvision.pth")), "torchvision");
  EXPECT_EQ(tb.load(*open_tensor_file(kFix + "/vlm/vit_torchvision.safetensors")), "torchvision");
  for (const Param& p : a.all()) EXPECT_TRUE(bit_equal(p.value, b.at(p.name).value)) << p.name;
  EXPECT_EQ(ta.fingerprint(), tb.fingerprint());
}

// A config with fewer layers or experts than the checkpoint is an error, not a model that quietly leaves the
// rest of the file out (the original's files hold unused blocks, so extra tensors alone cannot tell).
TEST(TorchCheckpoint, ConfigWithOtherLayerOrExpertCountIsRefused) {
  for (const std::string& file : {kPt, kSt}) {
    std::string e;
    try {
      load_llama(file, kConfig, {"n_layers=2"});
    } catch (const Error& err) {
      e = err.what();
    }
    EXPECT_NE(e.find(file), std::string::npos) << e;
    EXPECT_NE(e.find("holds 4 decoder layers"), std::string::npos) << e;
    EXPECT_NE(e.find("n_layers = 2"), std::string::npos) << e;
    e.clear();
    try {
      load_llama(file, kConfig, {"num_experts=2"});
    } catch (const Error& err) {
      e = err.what();
    }
    EXPECT_NE(e.find("num_experts = 2"), std::string::npos) << e;
  }
}
