// Phase 3 end to end on the tiny synthetic world of the alignment tests: the validation loss falls, the
// tower stays bit-identical while the projector and decoder change, skipped samples (no image, image not
// found, unreadable image, no assistant token left after truncation) are counted and named, resume is
// bit-exact, padding to the batch gives the losses of padding to the maximum, and `eval` reports the loss.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "io/safetensors.h"
#include "test_align_util.h"
#include "train/align.h"
#include "train/evaluate.h"
#include "train/instruct.h"

using namespace tv;
using namespace tv::align_test;

namespace {

struct InstructWorld {
  std::string phase2, data;
  InstructWorld() {
    World& w = world();
    AlignOptions o;
    o.config = w.config;
    o.llm = w.llm;
    o.vit = w.vit;
    o.captions = w.captions;
    o.images = w.images;
    o.out = w.fresh("phase2");
    o.quiet = true;
    o.threads = -1;
    o.steps = 2;
    align(o);
    phase2 = checkpoint_path(o.out, "best");
    const char* colours[] = {"red", "green", "blue", "yellow"};
    std::string lines;
    for (int i = 0; i < 24; ++i) {
      char name[32];
      std::snprintf(name, sizeof name, "img%04d.png", i);
      nlohmann::json conv = {{{"from", "human"}, {"value", "<image>\nWhat colour is the shape?"}},
                             {{"from", "gpt"}, {"value", colours[i % 4]}},
                             {{"from", "human"}, {"value", "Is it big?"}},
                             {{"from", "gpt"}, {"value", i % 3 ? "yes" : "no"}}};
      lines += nlohmann::json{{"id", "s" + std::to_string(i)}, {"image", name}, {"conversations", conv}}.dump() + "\n";
    }
    nlohmann::json qa = {{{"from", "human"}, {"value", "What is it?"}}, {{"from", "gpt"}, {"value", "a shape"}}};
    lines += nlohmann::json{{"id", "no_image"}, {"conversations", qa}}.dump() + "\n";
    lines += nlohmann::json{{"id", "missing"}, {"image", "missing.jpg"}, {"conversations", qa}}.dump() + "\n";
    lines += nlohmann::json{{"id", "damaged"}, {"image", "corrupt.png"}, {"conversations", qa}}.dump() + "\n";
    nlohmann::json long_q = {{{"from", "human"},
                              {"value", "a very long question that goes on and on about the picture and its colours "
                                        "and its shapes and its background and its size and its position and its "
                                        "corners and never lets the answer in"}},
                             {{"from", "gpt"}, {"value", "unseen"}}};
    lines += nlohmann::json{{"id", "too_long"}, {"image", "img0001.png"}, {"conversations", long_q}}.dump() + "\n";
    data = (fs::path(w.dir) / "conversations.jsonl").string();
    write_file_atomic(data, lines);
  }
};

InstructWorld& iworld() {
  static InstructWorld w;
  return w;
}

InstructOptions base_options(const std::string& out) {
  InstructOptions o;
  o.model = iworld().phase2;
  o.data = iworld().data;
  o.images = world().images;
  o.out = out;
  o.quiet = true;
  o.threads = -1;
  o.sets = {"instruct_coco_only=false", "instruct_batch_size=4", "instruct_max_seq_len=64", "instruct_learning_rate=0.003",
            "instruct_warmup_steps=2", "instruct_val_fraction=0.2", "instruct_val_batches=2", "instruct_log_interval=1000",
            "instruct_image_workers=2"};
  return o;
}

bool same_tensor(const SafetensorsFile& a, const SafetensorsFile& b, const std::string& n) {
  Tensor x = a.get(n), y = b.get(n);
  return x.shape() == y.shape() && std::memcmp(x.raw(), y.raw(), x.nbytes()) == 0;
}

}  // namespace

TEST(Instruct, ShortRunLowersValidationLossAndSkipsNamedSamples) {
  InstructOptions o = base_options(world().fresh("instruct"));
  o.steps = 16;
  InstructResult r = instruct(o);
  EXPECT_EQ(r.steps_done, 16);
  ASSERT_TRUE(r.has_val);
  EXPECT_LT(r.best_val, r.first_val);
  std::printf("instruct: validation loss %.4f -> %.4f (best %.4f)\n", r.first_val, r.last_val, r.best_val);
  std::map<std::string, std::string> skipped;
  for (const SkippedSample& s : r.skipped) skipped[s.id] = s.reason;
  EXPECT_EQ(skipped.count("no_image"), 1u);
  EXPECT_EQ(skipped.count("missing"), 1u);
  EXPECT_EQ(skipped.count("too_long"), 1u);
  // Named by its image path (training or validation came across it): the decoder found it unreadable.
  bool damaged = false;
  for (const auto& [id, why] : skipped) damaged |= id.find("corrupt.png") != std::string::npos && why.find("unreadable") == 0;
  EXPECT_TRUE(damaged) << "corrupt.png was not reported";
  EXPECT_EQ(r.skipped.size(), 4u);
  std::ifstream list(fs::path(o.out) / "skipped_samples.tsv");
  std::string text((std::istreambuf_iterator<char>(list)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("too_long\tno assistant token"), std::string::npos) << text;

  SafetensorsFile last(checkpoint_path(o.out, "last")), start(iworld().phase2);
  EXPECT_EQ(last.metadata().at("phase"), "instruct");
  EXPECT_TRUE(same_tensor(last, start, "vision_encoder.encoder.encoder_layer_0.self_attention.in_proj_weight"));
  EXPECT_TRUE(same_tensor(last, start, "vision_encoder.norm.weight"));
  EXPECT_FALSE(same_tensor(last, start, "vision_encoder.proj.0.weight"));
  EXPECT_FALSE(same_tensor(last, start, "llm.decoder_layers.0.mha.w_q.weight"));
  EXPECT_FALSE(same_tensor(last, start, "llm.emb.emb.weight"));
}

TEST(Instruct, ResumeIsBitExact) {
  auto opts = [&](const std::string& out) {
    InstructOptions o = base_options(out);
    o.steps = 8;
    o.sets.push_back("instruct_batches_per_epoch=3");  // crosses epoch boundaries before and after the stop
    o.sets.push_back("instruct_group_by_length=true");
    o.sets.push_back("instruct_val_every=3");
    return o;
  };
  InstructOptions whole = opts(world().fresh("iwhole"));
  instruct(whole);
  InstructOptions part = opts(world().fresh("ipart"));
  part.stop_after = 4;
  EXPECT_EQ(instruct(part).steps_done, 4);
  part.stop_after = -1;
  part.resume = true;
  EXPECT_EQ(instruct(part).steps_done, 8);
  auto a = train_losses(whole.out), b = train_losses(part.out);
  ASSERT_EQ(a.size(), 8u);
  ASSERT_EQ(b.size(), 8u);
  for (auto& [step, loss] : a) EXPECT_EQ(loss, b.at(step)) << "step " << step;
  SafetensorsFile x(checkpoint_path(whole.out, "last")), y(checkpoint_path(part.out, "last"));
  for (const std::string& n : x.names()) EXPECT_TRUE(same_tensor(x, y, n)) << n;
}

TEST(Instruct, PaddingToTheBatchGivesTheSameLosses) {
  InstructOptions o1 = base_options(world().fresh("ipadbatch")), o2 = base_options(world().fresh("ipadmax"));
  o1.steps = o2.steps = 3;
  o2.sets.push_back("instruct_pad_to_max=true");
  instruct(o1);
  instruct(o2);
  auto a = train_losses(o1.out), b = train_losses(o2.out);
  ASSERT_EQ(a.size(), 3u);
  for (auto& [step, loss] : a) EXPECT_NEAR(loss, b.at(step), 1e-5 * std::abs(loss)) << "step " << step;
}

TEST(Instruct, EvalReportsTokenAndBatchMeans) {
  InstructOptions o = base_options(world().fresh("ieval"));
  o.steps = 2;
  instruct(o);
  EvalOptions e;
  e.model = checkpoint_path(o.out, "last");
  e.task = "instruct";
  e.data = iworld().data;
  e.images = world().images;
  e.all_images = true;
  e.per_sample = true;
  e.threads = -1;
  e.sets = {"instruct_batch_size=4", "instruct_max_seq_len=64"};
  EvalReport r = evaluate(e);
  EXPECT_EQ(r.stats.samples, 24);
  EXPECT_EQ(r.stats.batches, 6);
  EXPECT_GT(r.stats.tokens, 24);
  EXPECT_TRUE(std::isfinite(r.stats.token_mean));
  EXPECT_TRUE(std::isfinite(r.stats.batch_mean));
  ASSERT_EQ(r.per_sample_json().size(), 24u);
  double sum = 0;
  int64_t n = 0;
  for (const RowLoss& x : r.stats.rows) {
    sum += x.sum;
    n += x.tokens;
  }
  EXPECT_NEAR(sum / double(n), r.stats.token_mean, 1e-9);
  auto j = nlohmann::json::parse(r.summary_json());
  EXPECT_EQ(j["samples"], 24);
  EXPECT_GE(j["skipped"].get<int64_t>(), 3);  // no_image, missing, too_long (and the corrupt image)
  // Captions, the phase-2 task, on the same checkpoint.
  e.task = "captions";
  e.data = world().captions;
  e.sets = {"vlm_batch_size=4"};
  EvalReport c = evaluate(e);
  EXPECT_GT(c.stats.samples, 40);
  EXPECT_TRUE(std::isfinite(c.stats.token_mean));
}
