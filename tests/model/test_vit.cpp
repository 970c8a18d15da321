// The vision tower against torchvision (fixtures made by scripts/fixtures/model_fixtures.py: a tiny
// VisionTransformer with random weights): the encoder input and the features after the final LayerNorm,
// loaded from torchvision's names and from the phase-2 checkpoint's vision_encoder.* names.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "harness/op_test.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "model/vit.h"

using namespace tv;
using tvtest::rel_err;

namespace {

const std::string kDir = std::string(TV_FIXTURE_DIR) + "/vlm/";

bool bit_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.contiguous().raw(), b.contiguous().raw(), a.nbytes()) == 0;
}

struct TinyTower {
  VisionConfig vc = VisionConfig::from(Config::from_file(kDir + "tiny_vlm_config.toml"));
  ParamStore params;
  VisionTower tower{vc, params};
  TinyTower() { params.set_trainable("", false); }
};

}  // namespace

TEST(VisionTower, ConfigFromTheFixture) {
  TinyTower t;
  EXPECT_EQ(t.vc.hidden, 16);
  EXPECT_EQ(t.vc.layers, 2);
  EXPECT_EQ(t.vc.heads, 2);
  EXPECT_EQ(t.vc.mlp, 32);
  EXPECT_EQ(t.vc.num_patches(), 4);
  VisionConfig full = VisionConfig::from(Config::from_string(""));
  EXPECT_EQ(full.num_patches(), 196);
  EXPECT_EQ(full.resize, 256);
  EXPECT_EQ(full.layers, 12);
  EXPECT_EQ(full.mlp, 3072);
  EXPECT_THROW(VisionConfig::from(Config::from_string("image_size = 100\n")), Error);
}

TEST(VisionTower, MatchesTorchvision) {
  TinyTower t;
  EXPECT_EQ(t.tower.load(SafetensorsFile(kDir + "vit_torchvision.safetensors")), "torchvision");
  SafetensorsFile step(kDir + "vlm_step.safetensors");
  Tensor pixels = step.get("pixels");
  double e_embed = rel_err(t.tower.embed(pixels), step.get("vit_embed"));
  double e_feat = rel_err(t.tower.forward(pixels), step.get("features"));
  EXPECT_LE(e_embed, 1e-4);
  EXPECT_LE(e_feat, 1e-4);
  std::printf("vit parity: embed rel err %.2e, features rel err %.2e\n", e_embed, e_feat);
}

TEST(VisionTower, CheckpointNamesGiveTheSameTower) {
  TinyTower a, b;
  a.tower.load(SafetensorsFile(kDir + "vit_torchvision.safetensors"));
  EXPECT_EQ(b.tower.load(SafetensorsFile(kDir + "vlm_params.safetensors")), "vision_encoder.*");
  Tensor pixels = SafetensorsFile(kDir + "vlm_step.safetensors").get("pixels");
  EXPECT_TRUE(bit_equal(a.tower.forward(pixels), b.tower.forward(pixels)));
  EXPECT_EQ(a.tower.fingerprint(), b.tower.fingerprint());
}

TEST(VisionTower, BatchedEqualsOneByOne) {
  // A batch's features do not depend on the other images in it (the feature cache and bit-exact resume
  // rely on this), nor on the chunk size.
  TinyTower t;
  t.tower.load(SafetensorsFile(kDir + "vit_torchvision.safetensors"));
  Tensor pixels = SafetensorsFile(kDir + "vlm_step.safetensors").get("pixels");
  Tensor both = t.tower.forward(pixels);
  for (int64_t b = 0; b < 2; ++b) {
    Tensor one = t.tower.forward(pixels.narrow(0, b, 1).contiguous());
    EXPECT_TRUE(bit_equal(one.select(0), both.select(b).contiguous())) << "image " << b;
  }
  EXPECT_TRUE(bit_equal(t.tower.forward(pixels, 1), both));
}

TEST(VisionTower, ShapeMismatchNamesTheKeys) {
  auto load_with = [](const std::string& extra) {
    Config c = Config::from_file(kDir + "tiny_vlm_config.toml");
    c.set_override(extra);
    ParamStore p;
    VisionTower t(VisionConfig::from(c), p);
    t.load(SafetensorsFile(kDir + "vit_torchvision.safetensors"));
  };
  try {
    load_with("vision_mlp_dim=64");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("mlp.0.weight"), std::string::npos) << m;
    EXPECT_NE(m.find("vision_mlp_dim"), std::string::npos) << m;
  }
  try {
    load_with("vision_num_layers=1");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("vision_num_layers"), std::string::npos) << e.what();
  }
  try {
    load_with("vision_num_layers=3");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("encoder_layer_2"), std::string::npos) << e.what();
  }
}

TEST(VisionTower, ProjectorGradientsMatchFiniteDifferences) {
  // f64 projector: backward against central differences of sum(y * r).
  ParamStore p;
  Projector proj(3, 5, 4, p, "proj.");
  Rng rng(7);
  proj.init_weights(rng);
  for (Param& q : p.all()) {
    q.value = q.value.to(DType::F64);
    q.grad_storage = Tensor::zeros(q.value.shape(), DType::F64);
  }
  Tensor x = Tensor::empty({2, 3}, DType::F64), r = Tensor::empty({2, 4}, DType::F64);
  for (int64_t i = 0; i < 6; ++i) x.data<double>()[i] = rng.normal();
  for (int64_t i = 0; i < 8; ++i) r.data<double>()[i] = rng.normal();
  auto f = [&] {
    Tensor y = proj.forward(x, false);
    double s = 0;
    for (int64_t i = 0; i < 8; ++i) s += y.data<double>()[i] * r.data<double>()[i];
    return s;
  };
  proj.forward(x, true);
  Tensor dx = proj.backward(r, true);
  auto check = [&](Tensor& v, const Tensor& g, const char* what) {
    for (int64_t i = 0; i < v.numel(); ++i) {
      double old = v.data<double>()[i], h = 1e-6;
      v.data<double>()[i] = old + h;
      double fp = f();
      v.data<double>()[i] = old - h;
      double fm = f();
      v.data<double>()[i] = old;
      EXPECT_NEAR(g.data<double>()[i], (fp - fm) / (2 * h), 1e-6) << what << "[" << i << "]";
    }
  };
  check(x, dx, "x");
  for (Param& q : p.all()) check(q.value, q.grad_storage, q.name.c_str());
}

TEST(VisionTower, RandomInitGivesAUsableTower) {
  // For demos without pretrained weights: features are finite, differ between images, and come out of the
  // final LayerNorm (weight 1, bias 0) with zero mean and unit variance per token.
  TinyTower t;
  Rng rng(3);
  t.tower.init_weights(rng);
  Tensor pixels = SafetensorsFile(kDir + "vlm_step.safetensors").get("pixels");
  Tensor f = t.tower.forward(pixels);
  const int64_t rows = f.numel() / 16;
  for (int64_t r = 0; r < rows; ++r) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < 16; ++i) mean += f.data<float>()[r * 16 + i] / 16.0;
    for (int64_t i = 0; i < 16; ++i) var += std::pow(f.data<float>()[r * 16 + i] - mean, 2) / 16.0;
    EXPECT_NEAR(mean, 0.0, 1e-5);
    EXPECT_NEAR(var, 1.0, 1e-3);
  }
  EXPECT_GT(rel_err(f.select(0), f.select(1)), 0.1);
}
