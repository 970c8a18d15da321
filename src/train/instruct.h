// Phase 3, visual instruction tuning (docs/spec.md section 7), as a library call: `tinyvlm instruct` and the
// demo both run it. The projector and the whole decoder train, starting from a phase-2 checkpoint; the
// vision tower stays frozen (its features come from the feature cache when one is given). Sequences and
// labels as the original's instruction dataset builds them (data/conversation.h); the loss is the mean
// cross-entropy over the labelled tokens, through the decoder's fused output layer and loss.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "data/instruct_data.h"
#include "model/config.h"
#include "model/params.h"
#include "model/vlm.h"
#include "train/trainer.h"

namespace tv {

class FeatureCache;
class TensorSource;

struct InstructOptions : RunOptions {
  std::string config;     // may be empty when the checkpoint carries its config
  std::string model;      // phase-2 checkpoint (tinyvlm's, or the original's best_vlm.pt with --config)
  std::string tokenizer;  // empty: the one recorded in the checkpoint
  std::string data, images;          // LLaVA-Instruct JSON / JSONL, and the image folder
  std::string val_data, val_images;  // optional; else instruct_val_fraction of the samples is held out
  std::string cache_features;        // frozen-feature cache folder (empty: none)
};

struct InstructResult : TrainResult {
  std::vector<SkippedSample> skipped;  // every skipped sample (data and unreadable images), named
  int64_t not_coco = 0;                // left out by the COCO-only default
  int64_t train_samples = 0, val_samples = 0, truncated = 0;
  int64_t tower_images = 0, cache_hits = 0;
};

InstructResult instruct(const InstructOptions& options);

// The frozen-feature cache folder for this tower and matmul precision (bf16 features get their own);
// null when dir is empty.
std::unique_ptr<FeatureCache> open_feature_cache(const std::string& dir, VisionLanguageModel& vlm, const Config& cfg);

}  // namespace tv
