// `tinyvlm align`: phase 2, vision-language alignment — trains the projector between the frozen vision tower
// and the frozen phase-1 decoder on image-caption pairs (docs/spec.md section 7).
#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/train_options.h"
#include "train/align.h"

namespace tv::cli {

void add_align_command(CLI::App& app) {
  auto a = std::make_shared<AlignOptions>();
  CLI::App* cmd = app.add_subcommand("align", "Phase 2: train the vision projector on image-caption pairs");
  cmd->add_option("--config", a->config, "Config (the original's config.toml; default: the one stored in --llm)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--llm", a->llm, "Phase-1 decoder checkpoint (.safetensors, or the original's .pt with --config)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--vit", a->vit, "Vision tower: torchvision vit_b_16 state_dict (.pth or .safetensors) or a VLM checkpoint")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--captions", a->captions,
                  "COCO captions_*.json, JSONL {\"image\", \"caption\"} lines, or Parquet (a .parquet file, folder or glob) "
                  "with an image and a caption column")
      ->required();
  cmd->add_option("--images", a->images,
                  "Folder the image paths are relative to (Parquet: where the images are extracted, default "
                  "tinyvlm_images beside the first file)");
  cmd->add_option("--image-column", a->image_column,
                  "Parquet image column, a {bytes, path} struct or a list of them (default: from the huggingface metadata)");
  cmd->add_option("--caption-column", a->caption_column,
                  "Parquet caption column, a string or a list of strings: one sample per caption (default: the first of "
                  "caption, captions, sentences, text)");
  cmd->add_option("--val-captions", a->val_captions, "Validation captions (default: hold out vlm_val_fraction of the images)");
  cmd->add_option("--val-images", a->val_images, "Folder of the validation images (default: --images)");
  cmd->add_option("--tokenizer", a->tokenizer, "tokenizer.json (default: the one recorded in --llm)");
  cmd->add_option("--out", a->out, "Run directory: checkpoints (best, last), metrics.jsonl")->required();
  cmd->add_option("--cache-features", a->cache_features,
                  "Folder caching each image's tower output (bf16), reused across epochs, runs and phases");
  add_training_run_options(cmd, a, "Optimizer steps (default: vlm_epochs * batches per epoch)", "vlm_batch_size=16");
  cmd->callback([a] { align(*a); });
}

}  // namespace tv::cli
