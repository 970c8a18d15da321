#include "model/checkpoint.h"

#include "io/safetensors.h"

namespace tv {

Config resolve_config(const std::string& config_path, const std::string& checkpoint,
                      const std::vector<std::string>& overrides) {
  Config c;
  if (!config_path.empty()) {
    c = Config::from_file(config_path);
  } else if (!checkpoint.empty()) {
    SafetensorsFile f(checkpoint);
    auto it = f.metadata().find("config");
    if (it == f.metadata().end())
      fail(checkpoint, ": the checkpoint carries no config; pass --config config.toml");
    c = Config::from_string(it->second, checkpoint + " (stored config)");
  } else {
    fail("no config: pass --config config.toml");
  }
  for (const auto& o : overrides) c.set_override(o);
  return c;
}

std::unique_ptr<LoadedLlama> load_llama(const std::string& checkpoint, const std::string& config_path,
                                        const std::vector<std::string>& overrides) {
  auto out = std::make_unique<LoadedLlama>();
  out->config = resolve_config(config_path, checkpoint, overrides);
  SafetensorsFile f(checkpoint);
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
