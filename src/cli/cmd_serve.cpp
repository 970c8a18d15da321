// `tinyvlm serve`: an OpenAI-compatible HTTP server (docs/server.md) for a text or vision-language
// checkpoint. This file loads the model and maps options; src/server/ does the rest.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "cli/inference_options.h"
#include "cli/vlm_session.h"
#include "core/error.h"
#include "core/parallel.h"
#include "model/checkpoint.h"
#include "server/server.h"
#include "train/run_tokenizer.h"

namespace tv::cli {
namespace {

struct ServeArgs {
  std::string model, config, tokenizer, alias;
  server::ServerOptions opt;
  int64_t ctx = 0;
  int threads = 0;
  double max_image_mb = 8;
  std::vector<std::string> sets;
  std::string weights = "fp32";
};

void run_serve(ServeArgs a) {
  if (a.opt.parallel < 1 || a.opt.parallel > 256) fail("--parallel must be in [1, 256], got ", a.opt.parallel);
  if (a.opt.port < 0 || a.opt.port > 65535) fail("--port must be in [0, 65535] (0 = any free port), got ", a.opt.port);
  if (a.opt.max_queue < 1) fail("--queue must be >= 1, got ", a.opt.max_queue);
  if (a.ctx < 0) fail("--ctx must be >= 0 (0 = the model's), got ", a.ctx);
  if (!(a.opt.timeout_s > 0)) fail("--timeout must be > 0 seconds, got ", a.opt.timeout_s);
  if (a.opt.default_max_tokens < 1) fail("--max-tokens must be >= 1, got ", a.opt.default_max_tokens);
  if (!(a.max_image_mb > 0 && a.max_image_mb <= 256)) fail("--max-image-mb must be in (0, 256], got ", a.max_image_mb);
  if (a.opt.max_body_bytes < 1024) fail("--max-body-bytes must be >= 1024, got ", a.opt.max_body_bytes);
  if (a.opt.limits.max_image_pixels < 1) fail("--max-image-pixels must be >= 1, got ", a.opt.limits.max_image_pixels);
  a.opt.limits.max_image_bytes = size_t(a.max_image_mb * (1 << 20));
  if (!a.opt.limits.allow_local_images.empty()) {
    std::error_code ec;
    if (!std::filesystem::is_directory(a.opt.limits.allow_local_images, ec))
      fail("--allow-local-images: '", a.opt.limits.allow_local_images, "' is not a folder");
  }
  set_num_threads(a.threads);

  server::ServedModel served;
  served.name = a.alias.empty() ? std::filesystem::path(a.model).stem().string() : a.alias;
  // A vision-language checkpoint (phase 2-4) or a text one (phase 1).
  std::unique_ptr<TensorSource> file = open_tensor_file(a.model);
  const bool vision = find_vlm_prefix(*file).has_value();
  file.reset();
  VlmSession vs;
  std::unique_ptr<LoadedLlama> text;
  tok::Tokenizer text_tokenizer;
  if (vision) {
    vs = open_vlm_session(a.model, a.config, a.tokenizer, a.sets);
    VisionLanguageModel& vlm = *vs.vlm->model;
    served.llm = &vlm.llm();
    served.vlm = &vlm;
    served.tokenizer = &vs.tokenizer;
    served.eos = vs.eos;
    served.image_size = vs.vlm->vision_config.image;
    served.image_resize = vs.vlm->vision_config.resize;
    served.vision_tokens = vlm.num_vision_tokens();
    apply_weights_option(vlm.llm(), a.weights, "serve");
    served.context = a.ctx > 0 ? a.ctx : served.vision_tokens + vs.vlm->config.get_int("instruct_max_seq_len", 512) - 1;
  } else {
    text = load_llama(a.model, a.config, a.sets);
    CheckpointTokenizer ct = require_checkpoint_tokenizer(a.tokenizer, a.model, text->model_config.vocab_size);
    text_tokenizer = std::move(*ct.tokenizer);
    served.llm = text->model.get();
    apply_weights_option(*text->model, a.weights, "serve");
    served.tokenizer = &text_tokenizer;
    const int32_t eos = text_tokenizer.token_to_id("</s>");
    served.eos = eos >= 0 ? eos : 2;
    served.context = a.ctx > 0 ? a.ctx : text->model_config.max_seq_len;
  }
  if (served.context < served.vision_tokens + 2)
    fail("--ctx ", served.context, " is too small (the image alone takes ", served.vision_tokens, " positions)");
  server::run_server(served, a.opt, [&](int port) {
    std::fprintf(stderr, "serve: %s (%s model, %lld-position context), %d parallel, queue %zu; listening on http://%s:%d%s\n",
                 served.name.c_str(), vision ? "vision-language" : "text", (long long)served.context, a.opt.parallel,
                 a.opt.max_queue, a.opt.host.c_str(), port, a.opt.api_key.empty() ? "" : " (API key required)");
    std::fflush(stderr);
  });
  std::fprintf(stderr, "serve: stopped\n");
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto a = std::make_shared<ServeArgs>();
  CLI::App* cmd = app.add_subcommand("serve", "Serve a checkpoint over an OpenAI-compatible HTTP API (chat with images)");
  cmd->add_option("--model", a->model, "Checkpoint: a vision-language one (phase 2-4) or a text decoder (phase 1)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--config", a->config, "config.toml (default: the config stored in a tinyvlm checkpoint; required for a .pt)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--tokenizer", a->tokenizer, "tokenizer.json (default: the one recorded in the checkpoint)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--host", a->opt.host, "Address to listen on (keep 127.0.0.1 unless behind a proxy)")->capture_default_str();
  cmd->add_option("--port", a->opt.port, "Port (0 = any free port, printed)")->capture_default_str();
  cmd->add_option("--parallel", a->opt.parallel, "Requests that decode together, each with its own KV cache")
      ->capture_default_str();
  cmd->add_flag_function("--no-batch", [a](int64_t) { a->opt.batch = false; },
                         "Step the running requests one after another instead of in one batched decode step (a baseline)");
  cmd->add_option("--queue", a->opt.max_queue, "Requests that may wait for a slot; beyond them the answer is 503")
      ->capture_default_str();
  cmd->add_option("--ctx", a->ctx,
                  "Positions per request, vision tokens included (default: vision tokens + instruct_max_seq_len - 1, "
                  "or max_seq_len for a text model)");
  cmd->add_option("--max-tokens", a->opt.default_max_tokens, "New tokens when a request sets no max_tokens")
      ->capture_default_str();
  cmd->add_option("--api-key", a->opt.api_key, "Require 'Authorization: Bearer KEY' (also from $TINYVLM_API_KEY)")
      ->envname("TINYVLM_API_KEY");
  cmd->add_option("--timeout", a->opt.timeout_s, "Seconds a request may take, waiting included")->capture_default_str();
  cmd->add_option("--max-body-bytes", a->opt.max_body_bytes, "Largest request body (413 beyond)")->capture_default_str();
  cmd->add_option("--max-image-mb", a->max_image_mb, "Largest image, in MiB of file data (413 beyond)")->capture_default_str();
  cmd->add_option("--max-image-pixels", a->opt.limits.max_image_pixels, "Largest image, width x height (413 beyond)")
      ->capture_default_str();
  cmd->add_option("--allow-local-images", a->opt.limits.allow_local_images,
                  "Folder whose files requests may name as image URLs (default: none; only data: URLs)");
  cmd->add_option("--alias", a->alias, "Model id to report (default: the checkpoint's file name)");
  cmd->add_option("--set", a->sets, "Override a config key (repeatable)");
  cmd->add_option("--threads", a->threads, "Worker threads (default: all cores)");
  add_weights_option(cmd, a->weights);
  cmd->callback([a] { run_serve(*a); });
}

}  // namespace tv::cli
