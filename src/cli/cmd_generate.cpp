// `tinyvlm generate` and `tinyvlm perplexity`: inference with a phase-1 (or later) decoder checkpoint.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "cli/inference_options.h"
#include "cli/train_options.h"
#include "core/ops.h"
#include "core/parallel.h"
#include "io/atomic_file.h"
#include "io/tensor_source.h"
#include "model/checkpoint.h"
#include "model/generator.h"
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
std::unique_ptr<tok::Tokenizer> checkpoint_tokenizer(const std::string& given, const std::string& checkpoint,
                                                     int64_t vocab) {
  auto f = open_tensor_file(checkpoint);
  return tokenizer_for_checkpoint(given, checkpoint, f->metadata(), vocab);
}

void check_ids(const std::vector<int32_t>& ids, int64_t vocab, const std::string& what) {
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] >= vocab) fail(what, ": token id ", ids[i], " at position ", i, " is outside the vocabulary of ", vocab);
}

struct GenerateArgs {
  std::string model, config, prompt, prompt_ids, tokenizer;
  GenerationOptions gen;
  bool print_ids = false;
  int threads = 0;
  std::vector<std::string> sets;
  std::string weights = "fp32";
};

void run_generate(const GenerateArgs& a) {
  validate_generation_options(a.gen);
  set_num_threads(a.threads);
  auto m = load_llama(a.model, a.config, a.sets);
  apply_weights_option(*m->model, a.weights, "generate");
  std::unique_ptr<tok::Tokenizer> tk = checkpoint_tokenizer(a.tokenizer, a.model, m->model_config.vocab_size);

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
  if (int64_t(ids.size()) + a.gen.max_new_tokens > context)
    std::fprintf(stderr, "generate: note: prompt + --max-tokens (%lld) passes the context of %lld the model was trained on\n",
                 (long long)(int64_t(ids.size()) + a.gen.max_new_tokens), (long long)context);
  check_ids(ids, m->model_config.vocab_size, "prompt");
  GenerationOptions go = a.gen;
  go.stop_ids = {tk && tk->token_to_id("</s>") >= 0 ? tk->token_to_id("</s>") : 2};

  auto t0 = std::chrono::steady_clock::now();
  Generator g(*m->model, go);
  GenerationState s = g.start(Tensor(), ids);
  std::unique_ptr<TextStream> stream;
  if (tk && !a.print_ids) stream = std::make_unique<TextStream>(*tk);
  size_t n = 0;
  g.run(s, [&](int32_t id) {
    if (stream) {
      std::fputs(stream->push(id).c_str(), stdout);
    } else {
      std::printf("%s%d", n ? " " : "", id);
    }
    ++n;
    std::fflush(stdout);
  });
  if (stream) std::fputs(stream->finish().c_str(), stdout);
  std::printf("\n");
  std::fflush(stdout);  // the text before the statistics on stderr
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "generate: %zu prompt + %zu new tokens in %.2f s (%.1f tok/s, %s; stopped: %s)\n", ids.size(),
               s.generated.size(), secs, secs > 0 ? double(s.generated.size()) / secs : 0.0,
               go.use_cache ? "KV cache" : "no cache", stop_reason_name(s.stop));
}

struct PerplexityArgs {
  std::string model, config, text_file, ids_file, tokenizer;
  int threads = 0;
  std::vector<std::string> sets;
  std::string weights = "fp32";
};

void run_perplexity(const PerplexityArgs& a) {
  set_num_threads(a.threads);
  auto m = load_llama(a.model, a.config, a.sets);
  apply_weights_option(*m->model, a.weights, "perplexity");
  std::vector<int32_t> ids;
  if (!a.ids_file.empty()) {
    ids = parse_ids(read_file(a.ids_file), a.ids_file);
  } else {
    std::unique_ptr<tok::Tokenizer> tk = checkpoint_tokenizer(a.tokenizer, a.model, m->model_config.vocab_size);
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
  add_sampling_options(cmd, a->gen);
  add_weights_option(cmd, a->weights);
  cmd->add_flag("--print-ids", a->print_ids, "Print token ids instead of text");
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
  add_weights_option(cmd, a->weights);
  cmd->callback([a] {
    if (a->text_file.empty() && a->ids_file.empty()) fail("perplexity: give --text-file or --ids-file");
    run_perplexity(*a);
  });
}

}  // namespace tv::cli
