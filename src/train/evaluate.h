// Validation loss of a VLM on labelled image + text rows, shared by the phases' validation and
// `tinyvlm eval`: batches of B rows in order (rows whose image cannot be read are passed over and counted),
// each through vlm_loss_step without the backward. Reports the mean over labelled tokens and, as the
// original's validate() does, the mean of the per-batch means.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/instruct_data.h"
#include "model/vlm.h"

namespace tv {

class ImageFeatureSource;

struct RowLoss {
  int64_t row = 0;
  double sum = 0;  // summed CE over the row's labelled tokens
  int64_t tokens = 0;
};

struct EvalStats {
  double token_mean = 0, batch_mean = 0, sum = 0;  // NaN means when nothing was evaluated
  int64_t tokens = 0, samples = 0, batches = 0, unreadable = 0;
  std::vector<RowLoss> rows;  // with per_row
};

// max_batches <= 0: every row. The last batch may be shorter than B.
EvalStats evaluate_rows(VisionLanguageModel& vlm, ImageFeatureSource& features, const InstructTokens& tokens,
                        const std::vector<std::string>& row_images, const ConversationFormat& f, int64_t B,
                        int64_t max_batches, bool per_row = false);

struct EvalOptions {
  std::string model, config, tokenizer;
  std::string task = "instruct";  // "captions" (phase 2) or "instruct" (phase 3)
  std::string data, images, cache_features;
  std::vector<std::string> sets;
  int64_t max_samples = -1;
  bool per_sample = false, all_images = false;
  int threads = 0;
};

struct EvalReport {
  EvalStats stats;
  std::vector<std::string> row_names;  // row -> sample name (instruct: its id; captions: image#k)
  std::vector<SkippedSample> skipped;
  int64_t records = 0;
  std::string task, model, data;
  std::string summary_json() const;              // the one JSON object
  std::vector<std::string> per_sample_json() const;  // one JSON line per evaluated sample
};

EvalReport evaluate(const EvalOptions& options);

}  // namespace tv
