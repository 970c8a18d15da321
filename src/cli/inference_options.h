// What generate, ask, chat, serve and perplexity share on the command line: the sampling options
// (range-checked by validate_generation_options) and the weight format.
#pragma once
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>

#include "model/generator.h"
#include "model/llama.h"
#include "model/params.h"
#include "model/weight_format.h"

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

inline void add_weights_option(CLI::App* cmd, std::string& weights) {
  cmd->add_option("--weights", weights,
                  "Decoder weights at run time: fp32 (as trained), bf16 or q8 (8-bit, a scale per 32), converted once at load")
      ->capture_default_str();
}

// Converts the decoder's linear weights to the --weights format (docs/inference.md) and says so on stderr.
inline void apply_weights_option(Llama& llm, const std::string& weights, const char* command) {
  const WeightFormat f = parse_weight_format(weights);
  if (f == WeightFormat::F32) return;
  convert_linear_weights(llm, f);
  size_t bytes = 0;
  for (const Param* p : linear_weights(llm)) bytes += p->value.nbytes();
  std::fprintf(stderr, "%s: decoder linear weights in %s (%.1f MB)\n", command, weight_format_name(f), double(bytes) / 1e6);
}

}  // namespace tv::cli
