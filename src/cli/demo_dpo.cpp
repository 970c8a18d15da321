#include "cli/demo_dpo.h"

#include <chrono>
#include <filesystem>

#include "data/demo_pairs.h"
#include "data/dpo_data.h"
#include "model/checkpoint.h"
#include "model/vlm.h"
#include "tokenizer/bpe.h"
#include "train/dpo.h"
#include "train/image_features.h"
#include "train/run_tokenizer.h"

namespace tv::cli {
namespace fs = std::filesystem;

namespace {

constexpr int64_t kMaxSeqLen = 48;

// The model's own preference on held-out pairs: log p(chosen) - log p(rejected) per pair (evaluated against
// a reference of zeros, so the margin is the policy's log-probability difference).
DpoEvalStats own_preference(const std::string& checkpoint, const std::string& pairs_file, const std::string& images) {
  std::unique_ptr<LoadedVlm> m = load_vlm(checkpoint, "");
  const CheckpointTokenizer ct = require_checkpoint_tokenizer("", checkpoint, m->text_config.vocab_size + 1);
  const ConversationFormat f = conversation_format(*ct.tokenizer, m->text_config.vocab_size, kMaxSeqLen, ct.name);
  DpoSet set = load_dpo(pairs_file, images);
  std::vector<SkippedSample> skipped;
  const DpoTokens tok = tokenize_dpo(*ct.tokenizer, set, f, skipped);
  std::vector<std::string> imgs;
  for (int64_t k = 0; k < tok.pairs(); ++k) imgs.push_back(set.pairs[size_t(tok.pair_index(k))].image);
  DpoLogps zero;
  zero.chosen.assign(size_t(tok.pairs()), 0.0);
  zero.rejected = zero.chosen;
  ImageFeatureSource features(m->model->tower(), nullptr, 0, 16);
  DpoEvalStats e = evaluate_dpo_pairs(*m->model, nullptr, &zero, features, tok, imgs, f, 16, -1, DpoLossKind::Sigmoid, 1.0, true);
  for (int64_t& k : e.pair) k = tok.pair_index(k);  // -> the pair's index in the file
  return e;
}

}  // namespace

DemoDpoResult run_demo_dpo(const DemoDpoOptions& o) {
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  DemoDpoResult r;
  const SyntheticCaptionSet& set = *o.set;
  r.pairs_file = make_demo_pairs(set, o.images, "preference_pairs.jsonl", 0, o.train_images, 1, 23, &r.train_pairs);
  r.held_out_file =
      make_demo_pairs(set, o.images, "preference_pairs_held_out.jsonl", o.train_images, set.images.size(), 1, 29, &r.held_out_pairs);

  DpoOptions d;
  d.model = o.instruct_checkpoint;
  d.data = r.pairs_file;
  d.images = o.images;
  d.out = r.run_dir = (fs::path(o.out) / "dpo").string();
  d.cache_features = o.cache_features;
  d.precompute_ref = true;  // one model in memory, half the forwards
  d.steps = o.steps;
  d.threads = -1;
  d.sets = {"dpo_batch_size=16",   "dpo_max_seq_len=" + std::to_string(kMaxSeqLen),
            "dpo_learning_rate=3e-3", "dpo_warmup_steps=5",
            "dpo_beta=0.5",        "dpo_val_every=20",
            "dpo_val_batches=4",   "dpo_log_interval=10"};
  fs::remove_all(d.out);  // a fresh run each time
  const DpoEvalStats before = own_preference(o.instruct_checkpoint, r.held_out_file, o.images);
  DpoResult dr = dpo(d);
  r.steps = dr.steps_done;
  r.val_accuracy_best = dr.best_val;
  const std::string best = checkpoint_path(d.out, "best");
  const DpoEvalStats after = own_preference(best, r.held_out_file, o.images);
  r.before = before.accuracy;
  r.after = after.accuracy;
  // Against the reference: accuracy of beta * ((pc - rc) - (pr - rr)) > 0 from the two evaluations.
  int64_t wins = 0;
  for (size_t i = 0; i < after.pair.size() && i < before.pair.size(); ++i)
    wins += (after.policy.chosen[i] - before.policy.chosen[i]) - (after.policy.rejected[i] - before.policy.rejected[i]) > 0;
  r.reward_accuracy = after.pair.empty() ? 0 : double(wins) / double(after.pair.size());
  DpoSet held = load_dpo(r.held_out_file, o.images);
  for (size_t i = 0; i < 5 && i < before.pair.size() && i < after.pair.size(); ++i) {
    const DpoPair& p = held.pairs[size_t(before.pair[i])];
    r.examples.push_back({fs::path(p.image).filename().string(), p.question, p.chosen, p.rejected,
                          before.policy.chosen[i] - before.policy.rejected[i],
                          after.policy.chosen[i] - after.policy.rejected[i]});
  }
  r.seconds = std::chrono::duration<double>(clock::now() - t0).count();
  return r;
}

}  // namespace tv::cli
