#include "model/checkpoint.h"

#include <algorithm>

#include "io/tensor_source.h"
#include "model/weight_format.h"

namespace tv {
namespace {

// `file` is the opened checkpoint (null when there is none).
Config config_for(const std::string& config_path, const TensorSource* file, const std::vector<std::string>& overrides) {
  Config c;
  if (!config_path.empty()) {
    c = Config::from_file(config_path);
  } else if (file) {
    auto it = file->metadata().find("config");
    if (it == file->metadata().end())
      fail(file->path(), ": the checkpoint carries no config (tinyvlm stores one in its .safetensors checkpoints; "
                         "the original's .pt files and converted weights have none): pass --config config.toml");
    c = Config::from_string(it->second, file->path() + " (stored config)");
  } else {
    fail("no config: pass --config config.toml");
  }
  for (const auto& o : overrides) c.set_override(o);
  return c;
}

// 1 + the largest i of the names "<prefix><marker><i>." (anchored) or "<prefix>...<marker><i>." (anywhere).
int64_t index_count(const TensorSource& file, const std::string& prefix, const std::string& marker, bool anchored) {
  int64_t n = 0;
  for (const std::string& name : file.names()) {
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    size_t at = name.find(marker, prefix.size());
    if (at == std::string::npos || (anchored && at != prefix.size())) continue;
    at += marker.size();
    int64_t i = 0;
    size_t end = at;
    while (end < name.size() && end - at < 9 && name[end] >= '0' && name[end] <= '9') i = i * 10 + (name[end++] - '0');
    if (end > at && end < name.size() && name[end] == '.') n = std::max(n, i + 1);
  }
  return n;
}

}  // namespace

std::optional<std::string> find_decoder_prefix(const TensorSource& file) {
  for (const char* p : {"", "llm.", "vlm.llm."})
    if (file.has(std::string(p) + "emb.emb.weight")) return p;
  return std::nullopt;
}

std::optional<std::string> find_vlm_prefix(const TensorSource& file) {
  for (const char* p : {"", "vlm."}) {
    const std::string s = p;
    if (file.has(s + "llm.emb.emb.weight") && file.has(s + "vision_encoder.proj.0.weight") &&
        file.has(s + "vision_encoder.patch_embed.weight"))
      return s;
  }
  return std::nullopt;
}

std::string checkpoint_kind(const TensorSource& file) {
  if (std::optional<std::string> p = find_vlm_prefix(file))
    return p->empty() ? "vision-language model, phase-2 names (llm.*, vision_encoder.*: best_vlm.pt, tinyvlm align)"
                      : "vision-language model, phase-3/4 names (vlm.*: best_instruct.pt, the DPO checkpoints)";
  if (std::optional<std::string> p = find_decoder_prefix(file)) {
    if (p->empty()) return "decoder (phase 1: best.pt, tinyvlm pretrain)";
    return "decoder under " + *p + " without a complete vision tower and projector";
  }
  if (file.has("conv_proj.weight") && file.has("encoder.pos_embedding")) return "torchvision ViT weights";
  if (file.has("vision_encoder.patch_embed.weight") || file.has("vlm.vision_encoder.patch_embed.weight"))
    return "vision tower without a decoder";
  return "unknown";
}

std::string decoder_prefix(const TensorSource& file) {
  if (std::optional<std::string> p = find_decoder_prefix(file)) return *p;
  fail(file.path(), ": no decoder weights found (expected a tensor named emb.emb.weight, llm.emb.emb.weight or "
                    "vlm.llm.emb.emb.weight)");
}

void check_decoder_layout(const TensorSource& file, const std::string& prefix, const ModelConfig& mc) {
  const int64_t layers = index_count(file, prefix, "decoder_layers.", true);
  if (layers != mc.n_layers)
    fail(file.path(), ": the checkpoint holds ", layers, " decoder layers (", prefix, "decoder_layers.<i>) but the "
         "config says n_layers = ", mc.n_layers);
  bool any_moe = false;
  for (int64_t l = 0; l < mc.n_layers; ++l) any_moe = any_moe || mc.is_moe(l);
  const int64_t experts = index_count(file, prefix, ".experts.", false);
  if (any_moe && experts != mc.num_experts)
    fail(file.path(), ": the checkpoint's MoE blocks hold ", experts, " experts but the config says num_experts = ",
         mc.num_experts);
}

Config resolve_config(const std::string& config_path, const std::string& checkpoint,
                      const std::vector<std::string>& overrides) {
  std::unique_ptr<TensorSource> f;
  if (config_path.empty() && !checkpoint.empty()) f = open_tensor_file(checkpoint);
  return config_for(config_path, f.get(), overrides);
}

std::unique_ptr<LoadedLlama> load_llama(const std::string& checkpoint, const std::string& config_path,
                                        const std::vector<std::string>& overrides) {
  auto out = std::make_unique<LoadedLlama>();
  // A given config is read first, so that its mistakes show before the checkpoint is opened.
  std::unique_ptr<TensorSource> file;
  if (config_path.empty()) file = open_tensor_file(checkpoint);
  out->config = config_for(config_path, file.get(), overrides);
  if (!file) file = open_tensor_file(checkpoint);
  const TensorSource& f = *file;
  // The decoder may sit under a prefix in VLM checkpoints; the vocabulary may include <image>.
  const std::string prefix = decoder_prefix(f);
  ModelConfig mc = ModelConfig::from(out->config);
  check_decoder_layout(f, prefix, mc);
  int64_t file_vocab = f.shape(prefix + "emb.emb.weight")[0];
  if (file_vocab != mc.vocab_size) {
    if (file_vocab == mc.vocab_size + 1) {
      mc.vocab_size = file_vocab;  // a vision-phase checkpoint: <image> was appended
    } else {
      fail(checkpoint, ": embedding has ", file_vocab, " rows but the config says vocab_size = ", mc.vocab_size);
    }
  }
  out->model_config = mc;
  out->model = std::make_unique<Llama>(mc, out->params);
  prepare_linear_weights(*out->model, stored_weight_format(f.metadata(), checkpoint));  // `convert --weights`
  out->report = out->params.load(f, prefix);
  return out;
}

}  // namespace tv
