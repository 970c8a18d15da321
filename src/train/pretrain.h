// Phase 1, text pretraining (REFERENCE.md section 7), as a library call: `tinyvlm pretrain` and the
// demo both run it.
#pragma once
#include <string>
#include <vector>

#include "train/trainer.h"

namespace tv {

struct PretrainOptions {
  std::string config, out, tokenizer;
  std::vector<std::string> data, sets;  // token shards or text files; "key=value" config overrides
  int64_t steps = -1, stop_after = -1;  // -1: from the config / never
  bool resume = false, quiet = false;
  int threads = 0;                      // 0: all cores; -1: leave the current setting
  int64_t min_vocab = 0;                // the tokenizer's id bound, checked against vocab_size
};

TrainResult pretrain(const PretrainOptions& options);

}  // namespace tv
