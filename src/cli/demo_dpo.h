// The demo's phase 4: DPO on built-in preference pairs over the synthetic images (data/demo_pairs.h), starting
// from the demo's phase-3 checkpoint, and the held-out preference accuracy before and after.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace tv {
struct SyntheticCaptionSet;
}

namespace tv::cli {

struct DemoDpoOptions {
  std::string out;                  // the demo folder: pairs go there, the run into <out>/dpo
  std::string instruct_checkpoint;  // phase 3's best
  std::string images;               // the synthetic images' folder
  std::string cache_features;       // the demo's feature cache ("" for none)
  const SyntheticCaptionSet* set = nullptr;
  size_t train_images = 0;          // images [0, train_images) train; the rest are held out
  int64_t steps = 100;
};

struct DemoDpoExample {
  std::string image, question, chosen, rejected;
  double before = 0, after = 0;  // log p(chosen) - log p(rejected) under the phase-3 and the DPO model
};

struct DemoDpoResult {
  // Held-out preference accuracy: the share of held-out pairs whose correct answer the model gives a higher
  // log-probability than the wrong one, under the phase-3 model (before) and the DPO model (after).
  double before = 0, after = 0;
  double reward_accuracy = 0;         // the DPO model's accuracy against its reference (margin > 0), held out
  double val_accuracy_best = 0;       // best validation accuracy of the run
  int64_t train_pairs = 0, held_out_pairs = 0, steps = 0;
  double seconds = 0;
  std::string run_dir, pairs_file, held_out_file;
  std::vector<DemoDpoExample> examples;  // the first few held-out pairs
  bool raised() const { return after > before; }
};

DemoDpoResult run_demo_dpo(const DemoDpoOptions& o);

}  // namespace tv::cli
