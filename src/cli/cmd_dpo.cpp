// `tinyvlm dpo`: phase 4, preference tuning (DPO) — trains the projector and decoder of a phase-3 checkpoint on
// chosen / rejected answer pairs against a frozen reference (docs/spec.md section 7; docs/dpo.md).
#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/train_options.h"
#include "train/dpo.h"

namespace tv::cli {

void add_dpo_command(CLI::App& app) {
  auto a = std::make_shared<DpoOptions>();
  CLI::App* cmd = app.add_subcommand("dpo", "Phase 4: preference-tune (DPO) a phase-3 model on chosen/rejected answer pairs");
  cmd->add_option("--model", a->model, "Phase-3 checkpoint (`tinyvlm instruct`'s, or the original's best_instruct.pt with --config)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--config", a->config, "Config (the original's config.toml; default: the one stored in --model)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--tokenizer", a->tokenizer, "tokenizer.json with <image> (default: the one recorded in --model)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--data", a->data,
                  "Preference pairs: JSONL of HuggingFaceH4/rlaif-v_formatted rows (prompt, chosen, rejected, images) or "
                  "of {image, question, chosen, rejected}, or Parquet in the rlaif-v layout (file, folder or glob)")
      ->required();
  cmd->add_option("--images", a->images,
                  "Image folder for relative image paths (images inside the data are written here once; default: "
                  "beside --data)");
  cmd->add_option("--val-data", a->val_data, "Validation pairs (default: hold out dpo_val_fraction)");
  cmd->add_option("--val-images", a->val_images, "Image folder of --val-data (default: --images)");
  cmd->add_option("--out", a->out, "Run directory: checkpoints (best by validation accuracy, last), metrics.jsonl")->required();
  cmd->add_option("--ref", a->ref, "Reference checkpoint (default: a frozen copy of --model)")->check(CLI::ExistingFile);
  cmd->add_option("--loss", a->loss, "sigmoid (DPO, default), ipo or hinge (config key dpo_loss)")
      ->check(CLI::IsMember({"sigmoid", "ipo", "hinge"}));
  cmd->add_option("--beta", a->beta, "DPO temperature (config key dpo_beta, default 0.1)")->check(CLI::PositiveNumber);
  cmd->add_flag("--precompute-ref", a->precompute_ref,
                "Run the reference once over all pairs before training and keep its log-probs in "
                "<out>/reference/ (training then holds one model)");
  cmd->add_option("--cache-features", a->cache_features,
                  "Folder caching each image's tower output (bf16), shared with `align` and `instruct`");
  add_training_run_options(cmd, a, "Optimizer steps (default: dpo_epochs * batches per epoch)", "dpo_batch_size=2");
  cmd->callback([a] { dpo(*a); });
}

}  // namespace tv::cli
