// Phase 2, vision-language alignment (docs/spec.md section 7), as a library call: `tinyvlm align` and the
// demo both run it. Trains only the projector; the decoder (from a phase-1 checkpoint) and the vision tower
// are frozen, gradients flow through the decoder to the projector.
#pragma once
#include <string>
#include <vector>

#include "train/trainer.h"

namespace tv {

struct AlignOptions : RunOptions {
  std::string config;     // may be empty when the phase-1 checkpoint carries its config
  std::string llm;        // phase-1 checkpoint (safetensors)
  std::string vit;        // the tower: torchvision vit_b_16 names or a VLM checkpoint's vision_encoder.*
  std::string tokenizer;  // empty: the one recorded in the phase-1 checkpoint
  std::string captions, images;          // COCO captions JSON or JSONL, and the image folder
  std::string val_captions, val_images;  // optional; else vlm_val_fraction of the images is held out
  std::string image_column, caption_column;  // Parquet captions: the columns (empty: found from the file)
  std::string cache_features;  // frozen-feature cache folder (empty: none)
};

struct AlignResult : TrainResult {
  int64_t skipped_samples = 0;  // samples whose image could not be read
  int64_t bad_images = 0;
  int64_t train_samples = 0, val_samples = 0;
  int64_t tower_images = 0, cache_hits = 0;  // images run through the tower / read from the feature cache
};

AlignResult align(const AlignOptions& options);

}  // namespace tv
