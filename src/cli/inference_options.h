// What generate, ask and chat share on the command line: the sampling options (range-checked by
// validate_generation_options) and where the tokenizer comes from.
#pragma once
#include <CLI/CLI.hpp>

#include <string>

#include "model/generator.h"

namespace tv::cli {

inline void add_sampling_options(CLI::App* cmd, GenerationOptions& g) {
  cmd->add_option("--max-tokens", g.max_new_tokens, "Most new tokens (>= 1)")->capture_default_str();
  cmd->add_option("--temperature", g.sampling.temperature, "Sampling temperature (>= 0; 0 = greedy)")->capture_default_str();
  cmd->add_option("--top-k", g.sampling.top_k, "Sample among the k most likely tokens (>= 0; 0 = all)")->capture_default_str();
  cmd->add_option("--top-p", g.sampling.top_p, "Nucleus sampling mass, in (0, 1] (1 = off)")->capture_default_str();
  cmd->add_option("--repetition-penalty", g.sampling.repetition_penalty,
                  "Penalty (> 0; 1 = off) on tokens already in the sequence; 1.2 is recommended for small models")
      ->capture_default_str();
  cmd->add_option("--seed", g.seed, "Sampling seed")->capture_default_str();
  cmd->add_flag("--no-cache", [&g](int64_t) { g.use_cache = false; },
                "Recompute the whole sequence for every token (the original's way) instead of the KV cache");
}

}  // namespace tv::cli
