// `tinyvlm pretrain`: phase 1, text pretraining of the decoder (REFERENCE.md section 7).
#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "train/pretrain.h"

namespace tv::cli {

void add_pretrain_command(CLI::App& app) {
  auto a = std::make_shared<PretrainOptions>();
  CLI::App* cmd = app.add_subcommand("pretrain", "Phase 1: pretrain the decoder on text (shards or raw text)");
  cmd->add_option("--config", a->config, "Model and training config (the original's config.toml works unchanged)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--data", a->data, "Token shard directories/files from `tinyvlm tokenize`, or .txt/.jsonl text")
      ->required();
  cmd->add_option("--tokenizer", a->tokenizer, "tokenizer.json (needed for raw text input)");
  cmd->add_option("--out", a->out, "Run directory: checkpoints (best, last), metrics.jsonl")->required();
  cmd->add_option("--steps", a->steps, "Optimizer steps (default: epochs * batches_per_epoch)");
  cmd->add_flag("--resume", a->resume, "Continue from <out>/last exactly where it stopped");
  cmd->add_option("--set", a->sets, "Override a config key, e.g. --set lr=1e-3 (repeatable)");
  cmd->add_option("--stop-after", a->stop_after, "Stop after this many steps (checkpointed), as if interrupted");
  cmd->add_option_function<std::string>(
         "--matmul-precision", [a](const std::string& v) { a->sets.push_back("matmul_precision=" + v); },
         "fp32 (default) or bf16: bf16 GEMM operands, fp32 accumulation and weights (config key matmul_precision)")
      ->check(CLI::IsMember({"fp32", "bf16"}));
  cmd->add_option("--threads", a->threads, "Worker threads (default: all cores)");
  cmd->callback([a] { pretrain(*a); });
}

}  // namespace tv::cli
