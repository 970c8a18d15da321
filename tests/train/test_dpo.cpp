// Phase 4 end to end on the tiny synthetic world of the alignment tests: training raises the validation accuracy
// and changes the projector and decoder but not the tower; skipped pairs (no image, image not found, unreadable
// image, no response left after truncation) are counted and named; resume is bit-exact with a live and with a
// precomputed reference; precomputed reference log-probabilities equal the live ones within float rounding, are
// reused when they match and continued when a precompute was interrupted; `eval --task dpo` reports the metrics.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>

#include "io/safetensors.h"
#include "test_align_util.h"
#include "tokenizer/bpe.h"
#include "train/align.h"
#include "train/dpo.h"
#include "train/image_features.h"
#include "train/run_tokenizer.h"

using namespace tv;
using namespace tv::align_test;

namespace {

struct DpoWorld {
  std::string vlm, data;
  DpoWorld() {
    World& w = world();
    AlignOptions o;
    o.config = w.config;
    o.llm = w.llm;
    o.vit = w.vit;
    o.captions = w.captions;
    o.images = w.images;
    o.out = w.fresh("dpo_phase2");
    o.quiet = true;
    o.threads = -1;
    o.steps = 2;
    align(o);
    vlm = checkpoint_path(o.out, "best");
    const char* colours[] = {"red", "green", "blue", "yellow"};
    std::string lines;
    for (int i = 0; i < 24; ++i) {
      char name[32];
      std::snprintf(name, sizeof name, "img%04d.png", i);
      lines += nlohmann::json{{"id", "p" + std::to_string(i)}, {"image", name}, {"question", "What colour is the shape?"},
                              {"chosen", colours[i % 4]}, {"rejected", "no"}}
                   .dump() +
               "\n";
    }
    auto bad = [&](const char* id, const char* image, const std::string& q) {
      lines += nlohmann::json{{"id", id}, {"image", image}, {"question", q}, {"chosen", "a"}, {"rejected", "b"}}.dump() + "\n";
    };
    bad("missing", "missing.jpg", "What is it?");
    bad("damaged", "corrupt.png", "What is it?");
    bad("too_long", "img0001.png", "a very long question that goes on and on about the picture and its colours and its "
                                   "shapes and its background and never lets the answer in");
    lines += nlohmann::json{{"id", "no_image"}, {"question", "q"}, {"chosen", "a"}, {"rejected", "b"}}.dump() + "\n";
    data = (fs::path(w.dir) / "pairs.jsonl").string();
    write_file_atomic(data, lines);
  }
};

DpoWorld& dworld() {
  static DpoWorld w;
  return w;
}

DpoOptions base_options(const std::string& out) {
  DpoOptions o;
  o.model = dworld().vlm;
  o.data = dworld().data;
  o.images = world().images;
  o.out = out;
  o.quiet = true;
  o.threads = -1;
  o.sets = {"dpo_batch_size=4", "dpo_max_seq_len=64", "dpo_learning_rate=0.003", "dpo_warmup_steps=2",
            "dpo_val_fraction=0.2", "dpo_val_batches=2", "dpo_log_interval=1000", "dpo_image_workers=2", "dpo_beta=0.5"};
  return o;
}

bool same_tensor(const SafetensorsFile& a, const SafetensorsFile& b, const std::string& n) {
  Tensor x = a.get(n), y = b.get(n);
  return x.shape() == y.shape() && std::memcmp(x.raw(), y.raw(), x.nbytes()) == 0;
}

std::vector<nlohmann::json> metric_lines(const std::string& out, const std::string& split) {
  std::vector<nlohmann::json> v;
  std::ifstream in(fs::path(out) / "metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    if (j.value("split", "") == split) v.push_back(j);
  }
  return v;
}

}  // namespace

TEST(Dpo, ShortRunRaisesValidationAccuracyAndSkipsNamedPairs) {
  DpoOptions o = base_options(world().fresh("dpo"));
  o.steps = 12;
  o.sets.push_back("dpo_val_every=4");
  DpoResult r = dpo(o);
  EXPECT_EQ(r.steps_done, 12);
  ASSERT_TRUE(r.has_val);
  // At step 0 the policy is the reference: every margin is 0, so no pair counts as won.
  EXPECT_EQ(r.first_val, 0.0);
  EXPECT_EQ(r.val_before.margin, 0.0);
  EXPECT_NEAR(r.val_before.loss, std::log(2.0), 1e-6);
  EXPECT_GT(r.best_val, 0.5);
  EXPECT_GT(r.val_after.margin, 0.0);
  std::printf("dpo: validation accuracy %.3f -> %.3f (best %.3f), margin %.4f -> %.4f\n", r.first_val, r.last_val,
              r.best_val, r.val_before.margin, r.val_after.margin);
  std::map<std::string, std::string> skipped;
  for (const SkippedSample& s : r.skipped) skipped[s.id] = s.reason;
  EXPECT_EQ(skipped.count("missing"), 1u);
  EXPECT_EQ(skipped.count("no_image"), 1u);
  EXPECT_NE(skipped["too_long"].find("empty response"), std::string::npos);
  bool damaged = false;
  for (const auto& [id, why] : skipped) damaged |= id.find("corrupt.png") != std::string::npos && why.find("unreadable") == 0;
  EXPECT_TRUE(damaged) << "corrupt.png was not reported";
  EXPECT_TRUE(fs::exists(fs::path(o.out) / "skipped_samples.tsv"));
  // The original's metrics, every step.
  const auto train = metric_lines(o.out, "train");
  ASSERT_EQ(train.size(), 12u);
  for (const char* k : {"loss", "accuracy", "chosen_reward", "rejected_reward", "margin"}) EXPECT_TRUE(train[0].contains(k)) << k;
  EXPECT_NEAR(train[0]["margin"].get<double>(), train[0]["chosen_reward"].get<double>() - train[0]["rejected_reward"].get<double>(), 1e-9);
  const auto val = metric_lines(o.out, "val");
  ASSERT_EQ(val.size(), 4u);  // steps 0, 4, 8, 12
  EXPECT_TRUE(val[1].contains("val_accuracy") && val[1].contains("val_margin"));

  SafetensorsFile last(checkpoint_path(o.out, "last")), best(checkpoint_path(o.out, "best")), start(dworld().vlm);
  EXPECT_EQ(last.metadata().at("phase"), "dpo");
  EXPECT_TRUE(best.metadata().count("best_val_accuracy"));
  EXPECT_TRUE(same_tensor(last, start, "vision_encoder.encoder.encoder_layer_0.self_attention.in_proj_weight"));
  EXPECT_FALSE(same_tensor(last, start, "vision_encoder.proj.0.weight"));
  EXPECT_FALSE(same_tensor(last, start, "llm.decoder_layers.0.mha.w_q.weight"));

  // eval --task dpo: the same metrics as one object, and each pair's four log-probabilities.
  DpoEvalOptions e;
  e.model = checkpoint_path(o.out, "best");
  e.ref = dworld().vlm;
  e.data = dworld().data;
  e.images = world().images;
  e.sets = {"dpo_batch_size=4", "dpo_max_seq_len=64", "dpo_beta=0.5"};
  e.per_sample = true;
  e.threads = -1;
  DpoEvalReport rep = evaluate_dpo(e);
  auto j = nlohmann::json::parse(rep.summary_json());
  EXPECT_EQ(j["task"], "dpo");
  EXPECT_EQ(j["pairs"], 24);
  EXPECT_EQ(j["skipped"], 4);
  EXPECT_GT(j["accuracy"].get<double>(), 0.5);
  const auto lines = rep.per_sample_json();
  ASSERT_EQ(lines.size(), 24u);
  double wins = 0;
  for (const std::string& l : lines) {
    auto p = nlohmann::json::parse(l);
    wins += p["margin"].get<double>() > 0;
    EXPECT_NEAR(p["margin"].get<double>(), 0.5 * ((p["policy_chosen"].get<double>() - p["ref_chosen"].get<double>()) -
                                                  (p["policy_rejected"].get<double>() - p["ref_rejected"].get<double>())),
                1e-9);
  }
  EXPECT_DOUBLE_EQ(wins / 24, j["accuracy"].get<double>());
}

TEST(Dpo, ResumeIsBitExactWithALiveAndAPrecomputedReference) {
  for (bool precompute : {false, true}) {
    SCOPED_TRACE(precompute ? "precomputed reference" : "live reference");
    auto opts = [&](const std::string& out) {
      DpoOptions o = base_options(out);
      o.steps = 5;
      o.precompute_ref = precompute;
      o.sets.push_back("dpo_batches_per_epoch=2");  // crosses epoch boundaries before and after the stop
      o.sets.push_back("dpo_val_every=2");
      return o;
    };
    DpoOptions whole = opts(world().fresh("dwhole"));
    dpo(whole);
    DpoOptions part = opts(world().fresh("dpart"));
    part.stop_after = 3;
    EXPECT_EQ(dpo(part).steps_done, 3);
    part.stop_after = -1;
    part.resume = true;
    DpoResult r = dpo(part);
    EXPECT_EQ(r.steps_done, 5);
    if (precompute) EXPECT_EQ(r.ref_pairs_computed, 0);  // the resumed run reads the file
    auto a = train_losses(whole.out), b = train_losses(part.out);
    ASSERT_EQ(a.size(), 5u);
    ASSERT_EQ(b.size(), 5u);
    for (auto& [step, loss] : a) EXPECT_EQ(loss, b.at(step)) << "step " << step;
    SafetensorsFile x(checkpoint_path(whole.out, "last")), y(checkpoint_path(part.out, "last"));
    for (const std::string& n : x.names()) EXPECT_TRUE(same_tensor(x, y, n)) << n;
  }
}

TEST(Dpo, PrecomputedReferenceEqualsTheLiveOne) {
  // Training: the first step's loss and metrics with the reference's log-probs precomputed and live.
  DpoOptions live = base_options(world().fresh("dlive")), pre = base_options(world().fresh("dpre"));
  live.steps = pre.steps = 1;
  pre.precompute_ref = true;
  dpo(live);
  DpoResult rp = dpo(pre);
  EXPECT_TRUE(rp.ref_precomputed);
  EXPECT_EQ(rp.ref_pairs_computed, rp.train_pairs + rp.val_pairs - 1);  // all but corrupt.png's pair
  const auto l = metric_lines(live.out, "train"), p = metric_lines(pre.out, "train");
  ASSERT_EQ(l.size(), 1u);
  ASSERT_EQ(p.size(), 1u);
  // (At step 1 the policy is the reference: the live margins are 0, the precomputed ones float rounding.)
  EXPECT_LE(std::abs(l[0]["loss"].get<double>() - p[0]["loss"].get<double>()), 1e-6 * l[0]["loss"].get<double>());
  for (const char* k : {"margin", "chosen_reward", "rejected_reward"})
    EXPECT_LE(std::abs(l[0][k].get<double>() - p[0][k].get<double>()), 1e-5) << k;

  // The stored values against live forwards of other batch compositions (3 pairs a batch, other padding).
  std::unique_ptr<LoadedVlm> m = load_vlm(dworld().vlm, "", {"dpo_max_seq_len=64"});
  const CheckpointTokenizer ct = require_checkpoint_tokenizer("", dworld().vlm, m->text_config.vocab_size + 1);
  const ConversationFormat f = conversation_format(*ct.tokenizer, m->text_config.vocab_size, 64, ct.name);
  DpoSet all = load_dpo(dworld().data, world().images), train, val;
  split_dpo(all, 0.2, 42, train, val);
  std::vector<SkippedSample> skipped;
  const DpoTokens tok = tokenize_dpo(*ct.tokenizer, train, f, skipped);
  std::vector<std::string> images;
  for (int64_t k = 0; k < tok.pairs(); ++k) images.push_back(train.pairs[size_t(tok.pair_index(k))].image);
  ImageFeatureSource features(m->model->tower(), nullptr, 1, 3);
  DpoLogps zero;
  zero.chosen.assign(size_t(tok.pairs()), 0.0);
  zero.rejected = zero.chosen;
  const DpoEvalStats e =
      evaluate_dpo_pairs(*m->model, nullptr, &zero, features, tok, images, f, 3, -1, DpoLossKind::Sigmoid, 0.5, true);
  SafetensorsFile stored(rp.ref_logps);
  Tensor sc = stored.get("train.chosen", DType::F64), sr = stored.get("train.rejected", DType::F64);
  ASSERT_EQ(sc.numel(), tok.pairs());
  int64_t compared = 0, unreadable = 0, unreadable_val = 0;
  for (int64_t k = 0; k < tok.pairs(); ++k) unreadable += std::isnan(sc.data<double>()[k]);
  Tensor vc = stored.get("val.chosen", DType::F64);
  for (int64_t k = 0; k < vc.numel(); ++k) unreadable_val += std::isnan(vc.data<double>()[k]);
  EXPECT_EQ(unreadable + unreadable_val, 1);  // corrupt.png: no value, and never in a batch
  for (size_t i = 0; i < e.pair.size(); ++i) {
    const int64_t k = e.pair[i];
    EXPECT_LE(std::abs(sc.data<double>()[k] - e.policy.chosen[i]), 1e-5 * std::abs(e.policy.chosen[i])) << k;
    EXPECT_LE(std::abs(sr.data<double>()[k] - e.policy.rejected[i]), 1e-5 * std::abs(e.policy.rejected[i])) << k;
    ++compared;
  }
  EXPECT_EQ(compared + unreadable, tok.pairs());

  // A matching file is reused; an interrupted one is continued where it stopped, to the same values.
  pre.overwrite = true;
  EXPECT_EQ(dpo(pre).ref_pairs_computed, 0);
  {
    std::map<std::string, Tensor> t;
    for (const std::string& n : stored.names()) t[n] = stored.get(n, DType::F64);
    for (int64_t k = 5; k < t["train.chosen"].numel(); ++k) t["train.chosen"].data<double>()[k] = std::nan("");
    std::vector<NamedTensor> nt;
    for (auto& [n, x] : t) nt.push_back({n, x});
    std::map<std::string, std::string> md = stored.metadata();
    md["train_done"] = "5";
    md["val_done"] = "0";
    save_safetensors(rp.ref_logps + ".partial", nt, md);
  }
  fs::rename(rp.ref_logps + ".partial", rp.ref_logps);
  DpoResult again = dpo(pre);
  EXPECT_EQ(again.ref_pairs_computed, rp.ref_pairs_computed - 5);
  SafetensorsFile redone(rp.ref_logps);
  Tensor rc = redone.get("train.chosen", DType::F64);
  for (int64_t k = 0; k < rc.numel(); ++k)
    if (!std::isnan(sc.data<double>()[k]))  // other batches from pair 5 on: the same within float rounding
      EXPECT_LE(std::abs(rc.data<double>()[k] - sc.data<double>()[k]), 1e-5 * std::abs(sc.data<double>()[k])) << k;

  // Other data: recomputed for a fresh run, refused for a resumed one.
  DpoOptions other = pre;
  {
    std::ifstream in(dworld().data);
    std::string line, text;
    std::getline(in, line);  // without the first pair
    while (std::getline(in, line)) text += line + "\n";
    other.data = (fs::path(world().dir) / "pairs_other.jsonl").string();
    write_file_atomic(other.data, text);
  }
  const DpoResult ro = dpo(other);
  EXPECT_EQ(ro.ref_pairs_computed, ro.train_pairs + ro.val_pairs - 1);
  DpoOptions resumed = pre;
  resumed.overwrite = false;
  resumed.resume = true;
  resumed.steps = 2;
  EXPECT_THROW(dpo(resumed), Error);
}
