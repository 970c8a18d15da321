// `tinyvlm instruct`: phase 3, visual instruction tuning — trains the projector and the whole decoder of a
// phase-2 checkpoint on image conversations, the vision tower frozen (docs/spec.md section 7).
#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/train_options.h"
#include "train/instruct.h"

namespace tv::cli {

void add_instruct_command(CLI::App& app) {
  auto a = std::make_shared<InstructOptions>();
  CLI::App* cmd = app.add_subcommand("instruct", "Phase 3: instruction-tune the projector and decoder on image conversations");
  cmd->add_option("--model", a->model, "Phase-2 checkpoint (`tinyvlm align`'s, or the original's best_vlm.pt with --config)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--config", a->config, "Config (the original's config.toml; default: the one stored in --model)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--tokenizer", a->tokenizer, "tokenizer.json with <image> (default: the one recorded in --model)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--data", a->data,
                  "LLaVA-Instruct JSON (llava_instruct_150k.json, llava_v1_5_mix665k.json), JSONL of "
                  "{id, image, conversations}, or Parquet in that layout (a .parquet file, folder or glob)")
      ->required();
  cmd->add_option("--images", a->images,
                  "Image folder: names are looked up in train/data, validation/data, train2017, val2017, then the folder "
                  "(images inside Parquet data are written here once)")
      ->required();
  cmd->add_option("--val-data", a->val_data, "Validation conversations (default: hold out instruct_val_fraction)");
  cmd->add_option("--val-images", a->val_images, "Image folder of --val-data (default: --images)");
  cmd->add_option("--out", a->out, "Run directory: checkpoints (best, last), metrics.jsonl, skipped_samples.tsv")->required();
  cmd->add_option("--cache-features", a->cache_features,
                  "Folder caching each image's tower output (bf16), shared with `align`");
  add_training_run_options(cmd, a, "Optimizer steps (default: instruct_epochs * batches per epoch)",
                           "instruct_batch_size=4");
  cmd->add_flag_callback("--all-images", [a] { a->sets.insert(a->sets.begin(), "instruct_coco_only=false"); },
                         "Keep every sample with an image, not only COCO ones (config key instruct_coco_only)");
  cmd->callback([a] { instruct(*a); });
}

}  // namespace tv::cli
