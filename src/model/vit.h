// The vision tower (docs/spec.md section 4): torchvision's VisionTransformer (ViT-B/16 by default) as the
// phase-2 model uses it — patch conv, + pos_embed[:, 1:] (no class token), pre-norm encoder layers with
// nn.MultiheadAttention (stacked q,k,v in_proj), exact-GELU MLP, final LayerNorm — forward only (it is
// frozen in every phase), batched. Plus the trainable projector Linear -> GELU -> Linear.
#pragma once
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"
#include "model/config.h"
#include "model/params.h"

namespace tv {

class TensorSource;

// The tower's shape. hidden/patch/image come from the original's keys (vision_hidden_size, patch_size,
// image_size); layers/heads/mlp from tinyvlm's vision_num_layers, vision_num_heads, vision_mlp_dim
// (ViT-B/16: 12, 12, 3072), so tests and demos can use a small tower.
struct VisionConfig {
  int64_t hidden = 768, patch = 16, image = 224;
  int64_t layers = 12, heads = 12, mlp = 3072;
  int64_t resize = 256;  // Resize(shorter side) before CenterCrop(image); image_resize, default image * 256 / 224

  int64_t grid() const { return image / patch; }
  int64_t num_patches() const { return grid() * grid(); }  // = vision tokens (196 for ViT-B/16)
  static VisionConfig from(const Config& c);  // validates; errors name the key
  std::string describe() const;               // "ViT 224/16, 12 layers, 12 heads, 768 hidden, mlp 3072"
};

class VisionTower {
 public:
  // Registers the parameters under the phase-2 names (docs/spec.md section 3), e.g. prefix
  // "vision_encoder.": patch_embed.{weight,bias}, pos_embed, encoder.encoder_layer_{i}.*, norm.*.
  VisionTower(const VisionConfig& cfg, ParamStore& store, const std::string& prefix = "vision_encoder.");
  const VisionConfig& config() const { return cfg_; }
  const std::string& prefix() const { return prefix_; }
  std::vector<Param*> params() const;

  // A random tower initialised as torchvision initialises an untrained ViT (for demos and benchmarks
  // where no pretrained weights exist): LayerNorms 1/0, position embedding N(0, 0.02), patch conv
  // N(0, 1/fan_in) (untruncated), attention and MLP weights Xavier-uniform, biases 0.
  void init_weights(Rng& rng);

  // pixels [B, 3, image, image] (normalised) -> features [B, num_patches, hidden], after the final LayerNorm.
  // Runs in chunks of at most max_batch images so memory stays bounded (0: all at once).
  Tensor forward(const Tensor& pixels, int64_t max_batch = 32) const;
  // The encoder input (patch embedding + position embedding), for tests.
  Tensor embed(const Tensor& pixels) const;

  // Loads the tower (from safetensors or a torch.save file such as torchvision's vit_b_16 .pth) from
  // torchvision's vit_b_16 state_dict names (conv_proj.*, encoder.pos_embedding,
  // encoder.layers.encoder_layer_{i}.*, encoder.ln.*) or from a phase-2/3/4 checkpoint's
  // [vlm.]vision_encoder.* names. Shapes must match the config; errors name the file, tensor and key.
  // Returns which layout was found ("torchvision" or the prefix).
  std::string load(const TensorSource& file);

  // A 64-bit fingerprint of the weights and the preprocessing, naming a feature cache.
  uint64_t fingerprint() const;

 private:
  struct Layer {
    Param *ln1_w, *ln1_b, *ln2_w, *ln2_b, *in_w, *in_b, *out_w, *out_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b;
  };
  Tensor forward_chunk(const Tensor& pixels) const;

  VisionConfig cfg_;
  std::string prefix_;
  Param *patch_w_ = nullptr, *patch_b_ = nullptr, *pos_ = nullptr, *norm_w_ = nullptr, *norm_b_ = nullptr;
  std::vector<Layer> layers_;
};

// Linear(in, hidden) -> exact GELU -> Linear(hidden, out), with biases: "proj.0" and "proj.2" under the
// prefix, as nn.Sequential names them.
class Projector {
 public:
  Projector(int64_t in, int64_t hidden, int64_t out, ParamStore& store, const std::string& prefix = "vision_encoder.proj.");
  // PyTorch's default nn.Linear initialisation: weight and bias U(+-1/sqrt(in_features)).
  void init_weights(Rng& rng);

  // x [N, in] -> [N, out]. With `save`, keeps the input and hidden pre-activation for backward().
  Tensor forward(const Tensor& x, bool save);
  // dy [N, out] of the last saved forward -> weight and bias gradients (when trainable); returns d x when
  // want_dx (else an undefined tensor).
  Tensor backward(const Tensor& dy, bool want_dx);

  Param& w1() { return *w1_; }
  Param& w2() { return *w2_; }

 private:
  Param *w1_, *b1_, *w2_, *b2_;
  Tensor x_, h_, a_;  // saved: input, pre-activation, GELU output
};

}  // namespace tv
