// `tinyvlm ask`: one question about one image, answered by a vision-language checkpoint (phase 2, 3 or
// 4; tinyvlm's or the original's), streaming the answer as it is generated (docs/spec.md section 8).
#include <CLI/CLI.hpp>

#include <chrono>
#include <ctime>
#include <cstdio>

#include "cli/commands.h"
#include "cli/inference_options.h"
#include "cli/vlm_session.h"
#include "core/parallel.h"
#include "model/chat_prompt.h"
#include "train/run_tokenizer.h"

namespace tv::cli {

VlmSession open_vlm_session(const std::string& model, const std::string& config, const std::string& tokenizer,
                            const std::vector<std::string>& sets) {
  VlmSession s;
  s.vlm = load_vlm(model, config, sets);
  const int32_t image_id = s.vlm->model->image_token_id();
  // --tokenizer, else the one embedded in (or recorded by) the checkpoint; every id must fit the decoder.
  CheckpointTokenizer ct = require_checkpoint_tokenizer(tokenizer, model, image_id + 1);
  s.tokenizer = std::move(*ct.tokenizer);
  const int32_t tok_image = s.tokenizer.token_to_id("<image>");
  if (tok_image >= 0 && tok_image != image_id)
    fail(ct.name, ": <image> has id ", tok_image, " but the model's <image> is ", image_id,
         " (the text vocabulary size): this tokenizer does not belong to the checkpoint");
  if (int64_t(s.tokenizer.model_vocab_size()) > image_id)
    fail(ct.name, ": the tokenizer has ", s.tokenizer.model_vocab_size(), " tokens but the model's text vocabulary "
         "has ", image_id);
  const int32_t eos = s.tokenizer.token_to_id("</s>");
  s.eos = eos >= 0 ? eos : 2;
  return s;
}

namespace {

struct AskArgs {
  std::string model, config, tokenizer, image, prompt;
  GenerationOptions gen;
  bool print_ids = false;
  int threads = 0;
  std::vector<std::string> sets;
  std::string weights = "fp32";
};

double ms_since(std::chrono::steady_clock::time_point t) {
  return 1e3 * std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// CPU time of the process (all threads), which a busy shared machine inflates far less than wall time.
double cpu_ms() { return 1e3 * double(std::clock()) / CLOCKS_PER_SEC; }

void run_ask(AskArgs a) {
  validate_generation_options(a.gen);
  set_num_threads(a.threads);
  VlmSession s = open_vlm_session(a.model, a.config, a.tokenizer, a.sets);
  VisionLanguageModel& vlm = *s.vlm->model;
  apply_weights_option(vlm.llm(), a.weights, "ask");
  a.gen.stop_ids = {s.eos};
  const std::vector<int32_t> prompt = encode_question_prompt(s.tokenizer, a.prompt);

  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  const double c0 = cpu_ms();
  Tensor prefix = vlm.image_prefix_from_file(a.image);
  const double image_ms = ms_since(t0);
  Generator g(vlm.llm(), a.gen);
  GenerationState st = g.start(prefix, prompt);
  const double prefill_ms = ms_since(t0) - image_ms;
  TextStream stream(s.tokenizer);
  double first_ms = -1, first_cpu = 0;
  clock::time_point t_first;
  size_t n = 0;
  g.run(st, [&](int32_t id) {
    if (first_ms < 0) {
      first_ms = ms_since(t0);
      first_cpu = cpu_ms();
      t_first = clock::now();
    }
    if (a.print_ids) {
      std::printf("%s%d", n ? " " : "", id);
    } else {
      std::fputs(stream.push(id).c_str(), stdout);
    }
    ++n;
    std::fflush(stdout);
  });
  if (!a.print_ids) std::fputs(stream.finish().c_str(), stdout);
  std::printf("\n");
  std::fflush(stdout);  // the answer before the statistics on stderr
  const double rest_ms = first_ms < 0 ? 0 : ms_since(t_first), rest_cpu = first_ms < 0 ? 0 : cpu_ms() - first_cpu;
  const double rate = n > 1 && rest_ms > 0 ? double(n - 1) / (rest_ms / 1e3) : 0.0;
  const double cpu_rate = n > 1 && rest_cpu > 0 ? double(n - 1) / (rest_cpu / 1e3) : 0.0;
  std::fprintf(stderr,
               "ask: %lld vision + %zu prompt tokens; image %.1f ms, prefill %.1f ms, first token at %.1f ms "
               "(%.1f ms CPU); %zu new tokens, then %.1f tok/s (%.1f per CPU second; %s; stopped: %s)\n",
               (long long)vlm.num_vision_tokens(), prompt.size(), image_ms, prefill_ms, first_ms < 0 ? 0.0 : first_ms,
               first_ms < 0 ? 0.0 : first_cpu - c0, n, rate, cpu_rate, a.gen.use_cache ? "KV cache" : "no cache",
               stop_reason_name(st.stop));
}

}  // namespace

void add_ask_command(CLI::App& app) {
  auto a = std::make_shared<AskArgs>();
  CLI::App* cmd = app.add_subcommand("ask", "Ask a vision-language checkpoint a question about an image (streams the answer)");
  cmd->add_option("--model", a->model,
                  "Vision-language checkpoint: phase 2 (llm.*, vision_encoder.*) or 3-4 (vlm.*), .safetensors or .pt")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--config", a->config, "config.toml (default: the config stored in a tinyvlm checkpoint; required for a .pt)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--tokenizer", a->tokenizer, "tokenizer.json with <image> (default: the one recorded in the checkpoint)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--image", a->image, "JPEG or PNG file")->required()->check(CLI::ExistingFile);
  cmd->add_option("--prompt", a->prompt, "The question")->required();
  add_sampling_options(cmd, a->gen);
  add_weights_option(cmd, a->weights);
  cmd->add_flag("--print-ids", a->print_ids, "Print the answer's token ids instead of text");
  cmd->add_option("--set", a->sets, "Override a config key (repeatable)");
  cmd->add_option("--threads", a->threads, "Worker threads (default: all cores)");
  cmd->callback([a] { run_ask(*a); });
}

}  // namespace tv::cli
