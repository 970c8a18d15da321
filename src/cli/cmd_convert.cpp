// `tinyvlm convert IN OUT`: a checkpoint (safetensors or torch.save) rewritten as safetensors with the same
// tensor names, optionally with a config in its metadata. The original's .pt files then load without
// --config, memory-mapped, and without their optimizer state. With --weights bf16|q8 the decoder's linear
// weights are stored converted (model/weight_format.h), for inference only.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "io/safetensors.h"
#include "io/tensor_source.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/vlm.h"
#include "model/weight_format.h"

namespace tv::cli {
namespace {

struct ConvertArgs {
  std::string in, out, config, match, weights = "fp32";
  std::vector<std::string> sets;
};

// The decoder's linear weights of the checkpoint converted to `f`, under their names in the file.
std::map<std::string, Tensor> converted_linears(const ConvertArgs& a, const TensorSource& f, WeightFormat wf) {
  std::map<std::string, Tensor> out;
  auto take = [&](Llama& llm, const std::string& file_prefix) {
    convert_linear_weights(llm, wf);
    for (Param* p : linear_weights(llm)) out[file_prefix + p->name] = stored_weight_tensor(p->value);
  };
  if (std::optional<std::string> vp = find_vlm_prefix(f)) {
    std::unique_ptr<LoadedVlm> m = load_vlm(a.in, a.config, a.sets);
    take(m->model->llm(), *vp);
  } else if (std::optional<std::string> dp = find_decoder_prefix(f)) {
    std::unique_ptr<LoadedLlama> m = load_llama(a.in, a.config, a.sets);
    take(*m->model, *dp);
  } else {
    fail("convert --weights: ", a.in, " holds no decoder (", checkpoint_kind(f), ")");
  }
  return out;
}

void run_convert(const ConvertArgs& a) {
  std::map<std::string, std::string> meta;
  if (!a.config.empty()) {  // checked before any weight is read
    Config cfg = Config::from_file(a.config);
    for (const auto& s : a.sets) cfg.set_override(s);
    ModelConfig::from(cfg);
    meta["config"] = cfg.to_toml();
  } else if (!a.sets.empty()) {
    fail("convert: --set needs --config (the overrides apply to that config)");
  }
  namespace fs = std::filesystem;
  if (fs::exists(a.out) && fs::equivalent(a.in, a.out))
    fail("convert: ", a.out, " is the input file; write the result elsewhere");
  if (fs::is_directory(a.out)) fail("convert: ", a.out, " is a directory; name the file to write");
  const fs::path parent = fs::absolute(a.out).parent_path();
  if (!fs::is_directory(parent)) fail("convert: the folder of ", a.out, " (", parent.string(), ") does not exist");
  std::unique_ptr<TensorSource> f = open_tensor_file(a.in);
  // With a config, the model it describes must be the one in the file (layer and expert counts, shapes,
  // vocabulary, the tower of a vision-language model): the loaders check all of that, so that a wrong
  // config is never stored beside the weights.
  if (!a.config.empty() && find_vlm_prefix(*f)) {
    load_vlm(a.in, a.config, a.sets);
  } else if (!a.config.empty() && find_decoder_prefix(*f)) {
    load_llama(a.in, a.config, a.sets);
  }
  for (const auto& [k, v] : f->metadata()) meta.emplace(k, v);  // a given config wins over a stored one
  meta["converted_from"] = std::filesystem::absolute(a.in).string();
  // --weights: the decoder's linear weights stored in bf16 or q8 (model/weight_format.h), for inference.
  const WeightFormat wf = parse_weight_format(a.weights);
  std::map<std::string, Tensor> linears;
  if (wf != WeightFormat::F32) {
    if (!a.match.empty()) fail("convert: --weights converts a whole model; it does not go with --match");
    if (!meta.count("config"))
      fail("convert --weights: ", a.in, " carries no config; pass --config (the model must be built to convert it)");
    linears = converted_linears(a, *f, wf);
    meta[kWeightsMetadataKey] = weight_format_name(wf);
  }

  std::vector<NamedTensor> tensors;
  size_t bytes = 0;
  for (const std::string& n : f->names()) {
    if (!a.match.empty() && n.find(a.match) == std::string::npos) continue;
    auto it = linears.find(n);
    tensors.push_back({n, it != linears.end() ? it->second : f->get(n)});
    bytes += tensors.back().tensor.nbytes();
  }
  if (tensors.empty()) fail("convert: ", a.in, ": no tensor", a.match.empty() ? "" : " matches '" + a.match + "'");
  save_safetensors(a.out, tensors, meta);
  std::fprintf(stderr, "convert: %s (%s, %s) -> %s: %zu tensors, %.1f MB%s\n", a.in.c_str(), f->format(),
               checkpoint_kind(*f).c_str(), a.out.c_str(), tensors.size(), double(bytes) / 1e6,
               meta.count("config") ? ", config in the metadata" : "");
}

}  // namespace

void add_convert_command(CLI::App& app) {
  auto a = std::make_shared<ConvertArgs>();
  CLI::App* cmd = app.add_subcommand(
      "convert", "Rewrite a checkpoint (safetensors or torch.save .pt) as safetensors, optionally with its config");
  cmd->add_option("input", a->in, "The checkpoint to read")->required()->check(CLI::ExistingFile);
  cmd->add_option("output", a->out, "The safetensors file to write (atomically)")->required();
  cmd->add_option("--config", a->config, "Store this config (the original's config.toml works) in the metadata")
      ->check(CLI::ExistingFile);
  cmd->add_option("--set", a->sets, "Override a key of --config, e.g. --set max_seq_len=512 (repeatable)");
  cmd->add_option("--match", a->match, "Only tensors whose name contains this text");
  cmd->add_option("--weights", a->weights,
                  "Store the decoder's linear weights as fp32 (as they are), bf16 or q8, for inference only "
                  "(docs/inference.md); needs a config (--config or the file's)")
      ->capture_default_str();
  cmd->callback([a] { run_convert(*a); });
}

}  // namespace tv::cli
