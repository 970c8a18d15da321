// Loading a decoder for inference or further training from a checkpoint: tinyvlm's own safetensors
// (config in the metadata), or original-named weights in safetensors or the original's torch.save .pt
// files (config from --config). Unused blocks of the
// original's checkpoints are ignored; a VLM checkpoint's decoder ("llm." / "vlm.llm.") is found too.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/tensor_source.h"
#include "model/config.h"
#include "model/llama.h"
#include "model/params.h"

namespace tv {

struct LoadedLlama {
  Config config;
  ModelConfig model_config;
  ParamStore params;
  std::unique_ptr<Llama> model;
  ParamStore::LoadReport report;
};

// config_path may be empty when the checkpoint carries its config; overrides are "key=value" strings.
std::unique_ptr<LoadedLlama> load_llama(const std::string& checkpoint, const std::string& config_path,
                                        const std::vector<std::string>& overrides = {});

// Where a checkpoint keeps its decoder: "" (phase 1), "llm." (phase 2) or "vlm.llm." (phases 3-4); none
// when it holds no decoder. decoder_prefix fails then, naming the file.
std::optional<std::string> find_decoder_prefix(const TensorSource& file);
std::string decoder_prefix(const TensorSource& file);

// Where a checkpoint keeps a whole vision-language model (llm.*, vision_encoder.* with the projector):
// "" (phase 2: the original's best_vlm.pt, tinyvlm's align) or "vlm." (phases 3-4: best_instruct.pt and
// the DPO checkpoints); none otherwise.
std::optional<std::string> find_vlm_prefix(const TensorSource& file);

// What a checkpoint holds, in words: a phase-1 decoder, a phase-2 or phase-3/4 vision-language model,
// torchvision ViT weights, or "unknown" (for inspect and the errors of the loaders).
std::string checkpoint_kind(const TensorSource& file);

// Fails, naming the file, when the checkpoint's decoder has another number of layers or of experts than
// the config: loading would otherwise ignore the extra ones as if they were unused blocks.
void check_decoder_layout(const TensorSource& file, const std::string& prefix, const ModelConfig& mc);

// The config a run uses: the file (if given), then the checkpoint's stored one (if any), then overrides.
Config resolve_config(const std::string& config_path, const std::string& checkpoint,
                      const std::vector<std::string>& overrides);

}  // namespace tv
