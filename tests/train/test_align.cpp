// Phase 2 end to end on a tiny synthetic image-caption set: the validation loss falls, only the projector
// changes, unreadable images are skipped and counted, resume is bit-exact (with and without the feature
// cache), and a second run over the same feature cache never runs the tower yet computes the same losses.
#include <gtest/gtest.h>

#include <cstring>

#include "io/safetensors.h"
#include "test_align_util.h"
#include "train/align.h"

using namespace tv;
using namespace tv::align_test;

namespace {

AlignOptions base_options(const std::string& out) {
  World& w = world();
  AlignOptions o;
  o.config = w.config;
  o.llm = w.llm;
  o.vit = w.vit;
  o.captions = w.captions;
  o.images = w.images;
  o.out = out;
  o.quiet = true;
  o.threads = -1;
  return o;
}

bool same_tensor(const SafetensorsFile& a, const std::string& na, const SafetensorsFile& b, const std::string& nb) {
  Tensor x = a.get(na), y = b.get(nb);
  return x.shape() == y.shape() && std::memcmp(x.raw(), y.raw(), x.nbytes()) == 0;
}

}  // namespace

TEST(Align, ShortRunLowersValidationLossAndTrainsOnlyTheProjector) {
  AlignOptions o = base_options(world().fresh("run"));
  o.steps = 20;
  AlignResult r = align(o);
  EXPECT_EQ(r.steps_done, 20);
  ASSERT_TRUE(r.has_val);
  EXPECT_LT(r.last_val, r.first_val) << "validation loss should fall";
  EXPECT_LT(r.best_val, r.first_val);
  std::printf("align: validation loss %.4f -> %.4f (best %.4f)\n", r.first_val, r.last_val, r.best_val);
  // The missing and the corrupt image: skipped every time they come up, counted, never fatal.
  EXPECT_EQ(r.bad_images, 2);
  EXPECT_GE(r.skipped_samples, 2);

  SafetensorsFile last(checkpoint_path(o.out, "last")), best(checkpoint_path(o.out, "best"));
  SafetensorsFile phase1(world().llm), vit(world().vit);
  EXPECT_EQ(last.metadata().at("phase"), "align");
  EXPECT_EQ(last.metadata().at("image_token_id"), std::to_string(world().vocab));
  // The original's phase-2 names.
  for (const char* n : {"llm.emb.emb.weight", "llm.decoder_layers.3.mha.temp_scale", "vision_encoder.proj.0.weight",
                        "vision_encoder.proj.2.bias", "vision_encoder.pos_embed",
                        "vision_encoder.encoder.encoder_layer_1.mlp.3.weight", "vision_encoder.norm.bias"})
    EXPECT_TRUE(last.has(n)) << n;
  // Frozen means untouched: decoder and tower are bit-identical to their sources (no weight decay either).
  EXPECT_TRUE(same_tensor(last, "llm.decoder_layers.1.ffn.moe_ffn_block.experts.2.w_up.weight", phase1,
                          "decoder_layers.1.ffn.moe_ffn_block.experts.2.w_up.weight"));
  EXPECT_TRUE(same_tensor(last, "llm.rms_norm.gamma", phase1, "rms_norm.gamma"));
  EXPECT_TRUE(same_tensor(last, "vision_encoder.encoder.encoder_layer_0.self_attention.in_proj_weight", vit,
                          "encoder.layers.encoder_layer_0.self_attention.in_proj_weight"));
  Tensor emb = last.get("llm.emb.emb.weight"), emb1 = phase1.get("emb.emb.weight");
  ASSERT_EQ(emb.size(0), world().vocab + 1);
  EXPECT_EQ(std::memcmp(emb.raw(), emb1.raw(), emb1.nbytes()), 0);
}

TEST(Align, ResumeIsBitExact) {
  for (bool cache : {false, true}) {
    SCOPED_TRACE(cache ? "with feature cache" : "without feature cache");
    // Shuffled epochs of 4 batches: the run crosses two epoch boundaries, one of them after the stop.
    auto opts = [&](const std::string& out) {
      AlignOptions o = base_options(out);
      o.steps = 10;
      o.sets = {"vlm_shuffle=true", "vlm_batches_per_epoch=4", "vlm_val_batches=1"};
      if (cache) o.cache_features = out + "_cache";
      return o;
    };
    AlignOptions whole = opts(world().fresh("whole"));
    align(whole);
    AlignOptions part = opts(world().fresh("part"));
    part.stop_after = 5;
    EXPECT_EQ(align(part).steps_done, 5);
    part.stop_after = -1;
    part.resume = true;
    EXPECT_EQ(align(part).steps_done, 10);

    auto a = train_losses(whole.out), b = train_losses(part.out);
    ASSERT_EQ(a.size(), 10u);
    ASSERT_EQ(b.size(), 10u);
    for (auto& [step, loss] : a) EXPECT_EQ(loss, b.at(step)) << "step " << step;
    SafetensorsFile x(checkpoint_path(whole.out, "last")), y(checkpoint_path(part.out, "last"));
    EXPECT_TRUE(same_tensor(x, "vision_encoder.proj.2.weight", y, "vision_encoder.proj.2.weight"));
  }
}

TEST(Align, FeatureCacheIsReusedAcrossRuns) {
  const std::string cache = world().fresh("cache");
  AlignOptions first = base_options(world().fresh("cached1"));
  first.steps = 10;
  first.cache_features = cache;
  AlignResult r1 = align(first);
  EXPECT_EQ(r1.tower_images, 24) << "every readable image through the tower exactly once";

  AlignOptions second = base_options(world().fresh("cached2"));
  second.steps = 10;
  second.cache_features = cache;
  AlignResult r2 = align(second);
  EXPECT_EQ(r2.tower_images, 0) << "everything should come from the cache";
  EXPECT_GT(r2.cache_hits, 0);
  EXPECT_EQ(train_losses(first.out), train_losses(second.out));
  EXPECT_EQ(r1.first_val, r2.first_val);
}
