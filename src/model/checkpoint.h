// Loading a decoder for inference or further training from a checkpoint: tinyvlm's own safetensors
// (config in the metadata), or original-named weights in safetensors or the original's torch.save .pt
// files (config from --config). Unused blocks of the
// original's checkpoints are ignored; a VLM checkpoint's decoder ("llm." / "vlm.llm.") is found too.
#pragma once
#include <memory>
#include <string>
#include <vector>

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

// The config a run uses: the file (if given), then the checkpoint's stored one (if any), then overrides.
Config resolve_config(const std::string& config_path, const std::string& checkpoint,
                      const std::vector<std::string>& overrides);

}  // namespace tv
