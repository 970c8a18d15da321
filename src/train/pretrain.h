// Phase 1, text pretraining (docs/spec.md section 7), as a library call: `tinyvlm pretrain` and the
// demo both run it.
#pragma once
#include <string>
#include <vector>

#include "train/trainer.h"

namespace tv {

struct PretrainOptions : RunOptions {
  std::string config, tokenizer;
  std::vector<std::string> data;  // token shards or text files
  int64_t min_vocab = 0;          // the tokenizer's id bound, checked against vocab_size
};

TrainResult pretrain(const PretrainOptions& options);

}  // namespace tv
