#include "model/checkpoint.h"

#include "io/tensor_source.h"

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

}  // namespace

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
  std::string prefix;
  for (const char* p : {"", "llm.", "vlm.llm."})
    if (f.has(std::string(p) + "emb.emb.weight")) {
      prefix = p;
      break;
    }
  if (!f.has(prefix + "emb.emb.weight"))
    fail(checkpoint, ": no decoder weights found (expected a tensor named emb.emb.weight, llm.emb.emb.weight or "
                     "vlm.llm.emb.emb.weight)");
  ModelConfig mc = ModelConfig::from(out->config);
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
  out->report = out->params.load(f, prefix);
  return out;
}

}  // namespace tv
