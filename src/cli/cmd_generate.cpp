// `tinyvlm generate` and `tinyvlm perplexity`: inference with a phase-1 (or later) decoder checkpoint.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "cli/train_options.h"
#include "core/ops.h"
#include "core/parallel.h"
#include "io/atomic_file.h"
#include "io/tensor_source.h"
#include "model/checkpoint.h"
#include "model/sampler.h"
#include "tokenizer/bpe.h"
#include "tokenizer/corpus.h"
#include "train/run_tokenizer.h"

namespace tv::cli {
namespace {

std::vector<int32_t> parse_ids(const std::string& text, const std::string& what) {
  std::vector<int32_t> ids;
  std::istringstream is(text);
  std::string tok;
  int64_t pos = 0;
  while (is >> tok) {
    try {
      size_t used = 0;
      long v = std::stol(tok, &used);
      if (used != tok.size() || v < 0 || v > INT32_MAX) throw std::invalid_argument(tok);
      ids.push_back(int32_t(v));
    } catch (const std::exception&) {
      fail(what, ": item ", pos, " ('", tok, "') is not a token id (a non-negative integer)");
    }
    ++pos;
  }
  return ids;
}

// The tokenizer named on the command line, else the one embedded in (or recorded by) the checkpoint, else
// none; it must fit the model's vocabulary.
std::unique_ptr<tok::Tokenizer> tokenizer_for(const std::string& given, const std::string& checkpoint, int64_t vocab) {
  auto f = open_tensor_file(checkpoint);
  return tokenizer_for_checkpoint(given, checkpoint, f->metadata(), vocab);
}

void check_ids(const std::vector<int32_t>& ids, int64_t vocab, const std::string& what) {
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] >= vocab) fail(what, ": token id ", ids[i], " at position ", i, " is outside the vocabulary of ", vocab);
}

struct GenerateArgs {
  std::string model, config, prompt, prompt_ids, tokenizer;
  int64_t max_tokens = 100;
  SamplerOptions sampling;
  uint64_t seed = 0;
  bool print_ids = false, no_cache = false;
  int threads = 0;
  std::vector<std::string> sets;
};

void run_generate(const GenerateArgs& a) {
  set_num_threads(a.threads);
  auto m = load_llama(a.model, a.config, a.sets);
  Llama& model = *m->model;
  std::unique_ptr<tok::Tokenizer> tk = tokenizer_for(a.tokenizer, a.model, m->model_config.vocab_size);

  std::vector<int32_t> ids;
  if (!a.prompt_ids.empty()) {
    ids = parse_ids(a.prompt_ids, "--prompt-ids");
  } else {
    if (!tk) fail("--prompt needs a tokenizer: pass --tokenizer tokenizer.json (or use --prompt-ids)");
    tok::require_valid_utf8(a.prompt, "--prompt");
    ids = tk->encode(a.prompt);
  }
  if (ids.empty()) fail("the prompt is empty");
  const int64_t context = m->model_config.max_seq_len;
  if (int64_t(ids.size()) > context) {
    std::fprintf(stderr, "generate: the prompt has %zu tokens, more than the model's context of %lld; keeping its last %lld\n",
                 ids.size(), (long long)context, (long long)context);
    ids.erase(ids.begin(), ids.end() - context);
  }
  if (int64_t(ids.size()) + a.max_tokens > context)
    std::fprintf(stderr, "generate: note: prompt + --max-tokens (%lld) passes the context of %lld the model was trained on\n",
                 (long long)(int64_t(ids.size()) + a.max_tokens), (long long)context);
  const int64_t V = m->model_config.vocab_size;
  check_ids(ids, V, "prompt");
  int32_t eos = 2;
  if (tk && tk->token_to_id("</s>") >= 0) eos = tk->token_to_id("</s>");

  Rng rng(a.seed);
  std::vector<int32_t> all = ids, generated;
  auto t0 = std::chrono::steady_clock::now();
  KVCache cache = model.make_cache(int64_t(ids.size()) + a.max_tokens);
  Tensor logits;
  if (!a.no_cache) logits = model.forward_cached(model.embed(Tensor::from_i32({int64_t(ids.size())}, ids)), cache);
  std::string printed;
  for (int64_t step = 0; step < a.max_tokens; ++step) {
    if (a.no_cache) {  // the original's way: recompute the whole sequence for every token
      int64_t S = int64_t(all.size());
      Tensor full = model.forward(model.embed(Tensor::from_i32({S}, all)), 1, S, false);
      logits = full.narrow(0, S - 1, 1).contiguous();
    }
    std::vector<float> row(logits.data<float>(), logits.data<float>() + V);
    int32_t next = sample_next(std::move(row), all, a.sampling, rng);
    if (next == eos) break;
    all.push_back(next);
    generated.push_back(next);
    if (a.print_ids) {
      std::printf("%s%d", generated.size() > 1 ? " " : "", next);
      std::fflush(stdout);
    } else if (tk) {
      // Stream text as it becomes complete UTF-8 (a token can end inside a multi-byte character).
      std::string text = tk->decode(generated);
      if (text.size() > printed.size() && text.compare(0, printed.size(), printed) == 0 &&
          text.compare(text.size() >= 3 ? text.size() - 3 : 0, 3, "\xEF\xBF\xBD") != 0) {
        std::fputs(text.c_str() + printed.size(), stdout);
        std::fflush(stdout);
        printed = text;
      }
    }
    if (!a.no_cache && step + 1 < a.max_tokens)
      logits = model.forward_cached(model.embed(Tensor::from_i32({1}, {next})), cache);
  }
  if (!a.print_ids && tk) {
    std::string text = tk->decode(generated);
    if (text.size() > printed.size()) std::fputs(text.c_str() + printed.size(), stdout);
  } else if (!a.print_ids) {
    for (size_t i = 0; i < generated.size(); ++i) std::printf("%s%d", i ? " " : "", generated[i]);
  }
  std::printf("\n");
  std::fflush(stdout);  // the text before the statistics on stderr
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "generate: %zu prompt + %zu new tokens in %.2f s (%.1f tok/s, %s)\n", ids.size(), generated.size(),
               secs, secs > 0 ? double(generated.size()) / secs : 0.0, a.no_cache ? "no cache" : "KV cache");
}

struct PerplexityArgs {
  std::string model, config, text_file, ids_file, tokenizer;
  int threads = 0;
  std::vector<std::string> sets;
};

void run_perplexity(const PerplexityArgs& a) {
  set_num_threads(a.threads);
  auto m = load_llama(a.model, a.config, a.sets);
  std::vector<int32_t> ids;
  if (!a.ids_file.empty()) {
    ids = parse_ids(read_file(a.ids_file), a.ids_file);
  } else {
    std::unique_ptr<tok::Tokenizer> tk = tokenizer_for(a.tokenizer, a.model, m->model_config.vocab_size);
    if (!tk) fail("--text-file needs --tokenizer tokenizer.json");
    const std::string text = read_file(a.text_file);
    tok::require_valid_utf8(text, a.text_file);
    ids = tk->encode(text);
  }
  if (ids.size() < 2) fail("perplexity needs at least two tokens, got ", ids.size());
  check_ids(ids, m->model_config.vocab_size, a.ids_file.empty() ? a.text_file : a.ids_file);
  const int64_t S = int64_t(ids.size()) - 1;
  Tensor in = Tensor::from_i32({1, S}, std::vector<int32_t>(ids.begin(), ids.end() - 1));
  Tensor tg = Tensor::from_i32({1, S}, std::vector<int32_t>(ids.begin() + 1, ids.end()));
  LmLoss l = lm_loss_step(*m->model, in, tg, 0.0, false);
  nlohmann::json j = {{"tokens", l.tokens}, {"cross_entropy", l.ce}, {"aux_loss", l.aux},
                      {"perplexity", std::exp(std::min(l.ce, 700.0))}};
  std::printf("%s\n", j.dump().c_str());
}

void add_model_options(CLI::App* cmd, std::string& model, std::string& config, std::vector<std::string>& sets,
                       int& threads) {
  cmd->add_option("--model", model, "Checkpoint: tinyvlm's .safetensors, or the original's torch.save .pt (needs --config)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--config", config, "config.toml (default: the config stored in a tinyvlm checkpoint; required for a .pt)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--set", sets, "Override a config key (repeatable)");
  add_threads_option(cmd, threads);
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto a = std::make_shared<GenerateArgs>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate text from a decoder checkpoint with a KV cache");
  add_model_options(cmd, a->model, a->config, a->sets, a->threads);
  auto* p = cmd->add_option("--prompt", a->prompt, "Prompt text (needs a tokenizer)");
  auto* pi = cmd->add_option("--prompt-ids", a->prompt_ids, "Prompt as space-separated token ids");
  p->excludes(pi);
  cmd->add_option("--tokenizer", a->tokenizer, "tokenizer.json (default: the one recorded in the checkpoint)");
  cmd->add_option("--max-tokens", a->max_tokens, "Most new tokens")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--temperature", a->sampling.temperature, "0 = greedy")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-k", a->sampling.top_k, "Sample among the k most likely (0 = all)")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-p", a->sampling.top_p, "Nucleus sampling mass")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--repetition-penalty", a->sampling.repetition_penalty, "1.2 is recommended for small models")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seed", a->seed, "Sampling seed")->capture_default_str();
  cmd->add_flag("--print-ids", a->print_ids, "Print token ids instead of text");
  cmd->add_flag("--no-cache", a->no_cache, "Recompute the whole sequence per token (the original's way)");
  cmd->callback([a] {
    if (a->prompt.empty() && a->prompt_ids.empty()) fail("generate: give --prompt or --prompt-ids");
    run_generate(*a);
  });
}

void add_perplexity_command(CLI::App& app) {
  auto a = std::make_shared<PerplexityArgs>();
  CLI::App* cmd = app.add_subcommand("perplexity", "Mean next-token cross-entropy and perplexity of a text as one JSON line");
  add_model_options(cmd, a->model, a->config, a->sets, a->threads);
  auto* t = cmd->add_option("--text-file", a->text_file, "Text to score (needs a tokenizer)")->check(CLI::ExistingFile);
  auto* i = cmd->add_option("--ids-file", a->ids_file, "Whitespace-separated token ids, scored as one sequence")
                ->check(CLI::ExistingFile);
  t->excludes(i);
  cmd->add_option("--tokenizer", a->tokenizer, "tokenizer.json (default: the one recorded in the checkpoint)");
  cmd->callback([a] {
    if (a->text_file.empty() && a->ids_file.empty()) fail("perplexity: give --text-file or --ids-file");
    run_perplexity(*a);
  });
}

}  // namespace tv::cli
