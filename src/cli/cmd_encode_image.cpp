// `tinyvlm encode-image`: one image through the phase-2 input pipeline — the preprocessed pixels
// ([3, image, image]) or the vision tower's features ([num_patches, hidden]) — written as safetensors.
#include <CLI/CLI.hpp>

#include <cstdio>

#include "cli/commands.h"
#include "cli/train_options.h"
#include "core/parallel.h"
#include "data/image.h"
#include "io/safetensors.h"
#include "io/tensor_source.h"
#include "model/config.h"
#include "model/vit.h"

namespace tv::cli {
namespace {

struct EncodeImageArgs {
  std::string image, out, vit, config;
  std::vector<std::string> sets;
  bool pixels_only = false;
  int threads = 0;
};

void run_encode_image(const EncodeImageArgs& a) {
  set_num_threads(a.threads);
  Config cfg = a.config.empty() ? Config::from_string("", "<defaults>") : Config::from_file(a.config);
  for (const auto& s : a.sets) cfg.set_override(s);
  const VisionConfig vc = VisionConfig::from(cfg);
  if (!a.pixels_only && a.vit.empty()) fail("encode-image: --vit is required for features (or pass --pixels-only)");

  Tensor pixels = Tensor::empty({3, vc.image, vc.image});
  preprocess_image_file(a.image, pixels.data<float>(), int(vc.resize), int(vc.image));
  std::map<std::string, std::string> meta = {{"image", a.image},
                                             {"preprocess", str_cat("Resize(", vc.resize, ") CenterCrop(", vc.image,
                                                                    ") Normalize(ImageNet)")}};
  if (a.pixels_only) {
    save_safetensors(a.out, {{"pixels", pixels}}, meta);
    std::fprintf(stderr, "encode-image: %s -> %s (pixels [3, %lld, %lld])\n", a.image.c_str(), a.out.c_str(),
                 (long long)vc.image, (long long)vc.image);
    return;
  }
  ParamStore params;
  VisionTower tower(vc, params, "");
  params.set_trainable("", false);
  tower.load(*open_tensor_file(a.vit));
  Tensor features = tower.forward(pixels.view({1, 3, vc.image, vc.image})).view({vc.num_patches(), vc.hidden});
  meta["tower"] = vc.describe();
  save_safetensors(a.out, {{"features", features}}, meta);
  std::fprintf(stderr, "encode-image: %s -> %s (features [%lld, %lld], %s)\n", a.image.c_str(), a.out.c_str(),
               (long long)vc.num_patches(), (long long)vc.hidden, vc.describe().c_str());
}

}  // namespace

void add_encode_image_command(CLI::App& app) {
  auto a = std::make_shared<EncodeImageArgs>();
  CLI::App* cmd = app.add_subcommand("encode-image", "Preprocess one image, and run it through the vision tower");
  cmd->add_option("--image", a->image, "JPEG or PNG file")->required();
  cmd->add_option("--out", a->out, "Output .safetensors: `features` [num_patches, hidden] or `pixels` [3, H, W]")
      ->required();
  cmd->add_option("--vit", a->vit,
                  "Tower weights: torchvision vit_b_16 state_dict (.pth or .safetensors) or a VLM checkpoint")
      ->check(CLI::ExistingFile);
  cmd->add_flag("--pixels-only", a->pixels_only, "Write only the preprocessed pixels (no tower needed)");
  cmd->add_option("--config", a->config, "Config with the tower shape (default: ViT-B/16 at 224)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--set", a->sets, "Override a config key, e.g. --set image_size=384 (repeatable)");
  add_threads_option(cmd, a->threads);
  cmd->callback([a] { run_encode_image(*a); });
}

}  // namespace tv::cli
