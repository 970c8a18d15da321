// Phase 4, DPO (docs/spec.md section 7), as a library call: `tinyvlm dpo` and the demo both run it. The policy
// starts from a phase-3 checkpoint and trains its projector and decoder (the vision tower stays frozen); the
// reference is a frozen copy of that checkpoint (or --ref), run forward only, without gradient memory. With
// precompute_ref the reference runs once over the training and validation pairs before training, its
// log-probabilities are kept in <out>/ref_logps.safetensors (written atomically as it goes, resumed, and
// checked against the data, the reference and the settings when reused), and training holds one model.
// Metrics as the original: loss, accuracy (share of pairs with a positive margin), chosen and rejected rewards
// (beta * log-ratio) and their margin; validation every dpo_val_every steps, `best` by validation accuracy.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/dpo_data.h"
#include "model/vlm.h"
#include "train/dpo_step.h"
#include "train/trainer.h"

namespace tv {

class ImageFeatureSource;

struct DpoOptions : RunOptions {
  std::string config;     // may be empty when the checkpoint carries its config
  std::string model;      // phase-3 checkpoint: the policy's start and (without ref) the reference
  std::string ref;        // a reference checkpoint other than `model` (its vision tower must be the same)
  std::string tokenizer;  // empty: the one recorded in the checkpoint
  std::string data, images;          // preference pairs (dpo_data.h) and their image folder
  std::string val_data, val_images;  // optional; else dpo_val_fraction of the pairs is held out
  std::string cache_features;        // frozen-feature cache folder (empty: none)
  std::string loss;                  // sigmoid | ipo | hinge; empty: dpo_loss (sigmoid)
  double beta = 0;                   // > 0 overrides dpo_beta (0.1)
  bool precompute_ref = false;       // or the key dpo_precompute_ref
};

// Held-out evaluation of a policy against a reference: means over the evaluated pairs, and (as the original's
// validation reports them) means of the per-batch means.
struct DpoEvalStats {
  double loss = 0, accuracy = 0, chosen_reward = 0, rejected_reward = 0, margin = 0;
  double loss_batch_mean = 0, accuracy_batch_mean = 0;
  int64_t pairs = 0, batches = 0, unreadable = 0, tokens = 0;
  std::vector<int64_t> pair;  // with per_pair: the kept pair of each entry below
  DpoLogps policy, ref;       // with per_pair
};

// Pairs of `tok` in order, B at a time (pairs whose image cannot be read are passed over and counted), at most
// max_batches batches (<= 0: all). The reference's log-probabilities come from `ref` or, when it is null, from
// `ref_logps` (indexed by kept pair).
DpoEvalStats evaluate_dpo_pairs(VisionLanguageModel& policy, VisionLanguageModel* ref, const DpoLogps* ref_logps,
                                ImageFeatureSource& features, const DpoTokens& tok, const std::vector<std::string>& images,
                                const ConversationFormat& f, int64_t B, int64_t max_batches, DpoLossKind kind,
                                double beta, bool per_pair = false);

// The reference's log-probabilities of every pair of `tok` (NaN for a pair whose image cannot be read).
DpoLogps reference_logps(VisionLanguageModel& ref, ImageFeatureSource& features, const DpoTokens& tok,
                         const std::vector<std::string>& images, const ConversationFormat& f, int64_t B);

struct DpoResult : TrainResult {
  std::vector<SkippedSample> skipped;  // every skipped pair (data and unreadable images), named
  int64_t train_pairs = 0, val_pairs = 0, truncated = 0;
  bool ref_precomputed = false;
  int64_t ref_pairs_computed = 0;  // reference forwards of pairs done by the precompute in this call
  std::string ref_logps;           // the precomputed file
  DpoEvalStats val_before, val_after;  // the first and the last validation of this call (before step 1 and after the last)
};

DpoResult dpo(const DpoOptions& options);

// `tinyvlm eval --task dpo`: policy `model` against reference `ref` on `data`.
struct DpoEvalOptions {
  std::string model, ref, config, tokenizer, data, images, cache_features, loss;
  std::vector<std::string> sets;
  double beta = 0;
  int64_t max_samples = -1;
  bool per_sample = false;
  int threads = 0;
};
struct DpoEvalReport {
  DpoEvalStats stats;
  std::vector<std::string> pair_names;  // kept pair -> its id
  std::vector<SkippedSample> skipped;
  int64_t records = 0;
  std::string model, ref, data, loss;
  double beta = 0;
  std::string summary_json() const;
  std::vector<std::string> per_sample_json() const;
};
DpoEvalReport evaluate_dpo(const DpoEvalOptions& options);

}  // namespace tv
