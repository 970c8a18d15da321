// Text generation with the decoder, for every caller (generate, ask, chat, the demo, the benchmark):
// prefill of an optional embedding prefix (the projected image of the vision phases) and prompt ids,
// decode steps with the KV cache (or, as the original does, recomputing the whole sequence), the sampler,
// stop ids and stop sequences, a token limit, and UTF-8-safe streaming of the decoded text.
//
// Each sequence lives in its own GenerationState (tokens, KV cache, sampler state), and a step advances
// one state by one token. step_batch advances several states together, each with its own generator
// and options, in one decode pass over the weights (Llama::forward_decode): the server's batching.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"
#include "model/llama.h"
#include "model/sampler.h"

namespace tv {

namespace tok {
class Tokenizer;
}

struct GenerationOptions {
  SamplerOptions sampling;  // temperature 0: greedy
  uint64_t seed = 0;
  int64_t max_new_tokens = 100;
  std::vector<int32_t> stop_ids;                     // e.g. EOS: ends the answer, not part of it
  std::vector<std::vector<int32_t>> stop_sequences;  // e.g. the ids of " USER:" in a chat: cut from the answer
  bool use_cache = true;                             // false: recompute the whole sequence per token
  // OpenAI's additive penalties over this round's new tokens (0 = off): a token's logit loses
  // frequency_penalty per time it was generated, and presence_penalty once if it was.
  double frequency_penalty = 0, presence_penalty = 0;
};

// Range checks of the options, with errors naming the command-line option (--temperature, ...).
void validate_generation_options(const GenerationOptions& o);

enum class StopReason { Running, StopId, StopSequence, MaxTokens, ContextFull };
const char* stop_reason_name(StopReason r);

// One sequence: [prefix embeddings] ++ embed(tokens). The KV cache holds the prefix and the first
// `cached` tokens; `logits` predicts the token after the last one.
struct GenerationState {
  Tensor prefix;                  // [P, D], or undefined
  std::vector<int32_t> tokens;    // the prompt, then what was generated
  std::vector<int32_t> generated; // this round's new tokens (without a stop id or stop sequence)
  size_t emitted = 0;             // generated tokens handed to the caller so far
  int64_t capacity = 0;           // positions the sequence may take (prefix + tokens)
  int64_t cached = 0;             // tokens whose keys and values are in the cache
  KVCache cache;
  std::vector<float> logits;      // next-token logits [V]
  Rng rng;
  StopReason stop = StopReason::Running;

  int64_t prefix_len() const { return prefix.defined() ? prefix.size(0) : 0; }
  int64_t length() const { return prefix_len() + int64_t(tokens.size()); }
  bool done() const { return stop != StopReason::Running; }
};

class Generator;

// One sequence of a batched step: its generator (options, model) and its state; token is set to what
// Generator::step would return (the new token, or -1 when it stopped without one).
struct BatchEntry {
  const Generator* gen = nullptr;
  GenerationState* state = nullptr;
  int32_t token = -1;
};

// One decode step for every entry, as Generator::step on each (the same sampling, stop ids, stop
// sequences, token limit, context full and penalties, each state with its own generator's options),
// but the new tokens of all the states that go on are fed in one batched decode step
// (Llama::forward_decode): one weight pass for the whole batch. Every generator must run on the same
// Llama; states must be distinct. Done states are left as they are (token -1). Generators without the
// KV cache (use_cache false) are fed one by one, as step() does.
void step_batch(std::span<BatchEntry> batch);

class Generator {
 public:
  Generator(Llama& llm, GenerationOptions options);
  const GenerationOptions& options() const { return opt_; }
  GenerationOptions& options() { return opt_; }
  Llama& llm() { return *llm_; }

  // Prefill: a new state holding prefix [P, D] (may be undefined) and the prompt (may be empty when a
  // prefix is given). capacity 0: prefix + prompt + max_new_tokens.
  GenerationState start(const Tensor& prefix, const std::vector<int32_t>& prompt, int64_t capacity = 0) const;
  // The state now holds `tokens` after the same prefix (a chat's history with new turns): the cached
  // positions they share are kept, the rest is fed; a new round of generation begins.
  void resume(GenerationState& s, const std::vector<int32_t>& tokens) const;
  // One decode step: samples the next token; a stop id, a completed stop sequence, the token limit or a
  // full context ends the round (s.stop). Returns the new token, or -1 when it stopped without one.
  int32_t step(GenerationState& s) const;
  // New tokens that can no longer turn out to begin a stop sequence (all of them once done); marks them
  // emitted.
  std::vector<int32_t> take_final(GenerationState& s) const;
  // Steps until done, calling on_token with each token as it becomes final. Returns s.generated.
  const std::vector<int32_t>& run(GenerationState& s, const std::function<void(int32_t)>& on_token = {}) const;

 private:
  // Runs tokens[from..] (after the prefix too when with_prefix) through the decoder; sets the logits.
  void feed(GenerationState& s, size_t from, bool with_prefix) const;
  // The part of step() before the decoder: samples the next token and applies the stops. Returns it
  // (-1: none); `go_on` tells whether it must be fed (the state runs on).
  int32_t pick(GenerationState& s, bool& go_on) const;
  friend void step_batch(std::span<BatchEntry> batch);
  Llama* llm_;
  GenerationOptions opt_;
};

// Incremental detokenization: text pieces that are each whole UTF-8 characters and together equal
// tokenizer.decode(all ids); a token that ends inside a multi-byte character is held until the
// character is complete.
class TextStream {
 public:
  explicit TextStream(const tok::Tokenizer& tk) : tk_(&tk) {}
  std::string push(int32_t id);  // the text that became complete (may be empty)
  std::string finish();          // what is still held, as decode gives it (ill-formed bytes as U+FFFD)
  const std::vector<int32_t>& ids() const { return ids_; }

 private:
  const tok::Tokenizer* tk_;
  std::vector<int32_t> ids_;
  size_t start_ = 0;  // ids before this index have been emitted
};

}  // namespace tv
