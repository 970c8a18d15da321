// Next-token choice for generation: greedy at temperature 0, else temperature, top-k, top-p (nucleus)
// sampling, with an optional repetition penalty over the tokens seen so far (as HuggingFace applies it:
// positive logits are divided by the penalty, negative ones multiplied).
#pragma once
#include <cstdint>
#include <vector>

#include "core/rng.h"

namespace tv {

struct SamplerOptions {
  double temperature = 0.0;
  int64_t top_k = 0;    // 0: off
  double top_p = 1.0;   // 1: off
  double repetition_penalty = 1.0;
};

int32_t sample_next(std::vector<float> logits, const std::vector<int32_t>& seen, const SamplerOptions& o, Rng& rng);

}  // namespace tv
