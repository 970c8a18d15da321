// `tinyvlm pretrain`: phase 1, text pretraining of the decoder (docs/spec.md section 7).
#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/train_options.h"
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
  add_training_run_options(cmd, a, "Optimizer steps (default: epochs * batches_per_epoch)", "lr=1e-3");
  cmd->callback([a] { pretrain(*a); });
}

}  // namespace tv::cli
