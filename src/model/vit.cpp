#include "model/vit.h"

#include <cmath>
#include <cstring>

#include "core/ops.h"
#include "io/tensor_source.h"

namespace tv {

namespace {

constexpr double kLnEps = 1e-6;  // torchvision's ViT LayerNorm eps

Tensor zeros_like(const Tensor& t) { return Tensor::zeros(t.shape(), t.dtype(), t.device()); }

// FNV-1a over 8-byte words (tail bytes one by one): fast enough for 86M parameters, and only needs to
// tell towers apart, not resist attacks.
uint64_t hash_bytes(uint64_t h, const void* data, size_t n) {
  const unsigned char* p = static_cast<const unsigned char*>(data);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = (h ^ w) * 0x100000001b3ull;
    h ^= h >> 29;
  }
  for (; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

}  // namespace

VisionConfig VisionConfig::from(const Config& c) {
  VisionConfig v;
  v.hidden = c.get_int("vision_hidden_size", v.hidden);
  v.patch = c.get_int("patch_size", v.patch);
  v.image = c.get_int("image_size", v.image);
  v.layers = c.get_int("vision_num_layers", v.layers);
  v.heads = c.get_int("vision_num_heads", v.heads);
  v.mlp = c.get_int("vision_mlp_dim", v.mlp);
  v.resize = c.get_int("image_resize", v.image * 256 / 224);
  const std::string& src = c.source();
  auto positive = [&](int64_t x, const char* key) {
    if (x <= 0) fail(src, ": ", key, " must be positive, got ", x);
  };
  positive(v.hidden, "vision_hidden_size");
  positive(v.patch, "patch_size");
  positive(v.image, "image_size");
  positive(v.layers, "vision_num_layers");
  positive(v.heads, "vision_num_heads");
  positive(v.mlp, "vision_mlp_dim");
  if (v.image % v.patch != 0)
    fail(src, ": image_size (", v.image, ") must be a multiple of patch_size (", v.patch, ")");
  if (v.hidden % v.heads != 0)
    fail(src, ": vision_hidden_size (", v.hidden, ") must be a multiple of vision_num_heads (", v.heads, ")");
  if (v.resize < v.image) fail(src, ": image_resize (", v.resize, ") must be at least image_size (", v.image, ")");
  return v;
}

std::string VisionConfig::describe() const {
  return str_cat("ViT ", image, "/", patch, ", ", layers, " layers, ", heads, " heads, ", hidden, " hidden, mlp ", mlp);
}

VisionTower::VisionTower(const VisionConfig& cfg, ParamStore& store, const std::string& prefix)
    : cfg_(cfg), prefix_(prefix) {
  const int64_t D = cfg.hidden, P = cfg.num_patches();
  auto add = [&](const std::string& name, const Shape& s) { return &store.add(prefix + name, s); };
  patch_w_ = add("patch_embed.weight", {D, 3, cfg.patch, cfg.patch});
  patch_b_ = add("patch_embed.bias", {D});
  pos_ = add("pos_embed", {1, P + 1, D});
  for (int64_t i = 0; i < cfg.layers; ++i) {
    std::string p = "encoder.encoder_layer_" + std::to_string(i) + ".";
    Layer L;
    L.ln1_w = add(p + "ln_1.weight", {D});
    L.ln1_b = add(p + "ln_1.bias", {D});
    L.in_w = add(p + "self_attention.in_proj_weight", {3 * D, D});
    L.in_b = add(p + "self_attention.in_proj_bias", {3 * D});
    L.out_w = add(p + "self_attention.out_proj.weight", {D, D});
    L.out_b = add(p + "self_attention.out_proj.bias", {D});
    L.ln2_w = add(p + "ln_2.weight", {D});
    L.ln2_b = add(p + "ln_2.bias", {D});
    L.fc1_w = add(p + "mlp.0.weight", {cfg.mlp, D});
    L.fc1_b = add(p + "mlp.0.bias", {cfg.mlp});
    L.fc2_w = add(p + "mlp.3.weight", {D, cfg.mlp});
    L.fc2_b = add(p + "mlp.3.bias", {D});
    layers_.push_back(L);
  }
  norm_w_ = add("norm.weight", {D});
  norm_b_ = add("norm.bias", {D});
}

std::vector<Param*> VisionTower::params() const {
  std::vector<Param*> out = {patch_w_, patch_b_, pos_};
  for (const Layer& L : layers_)
    for (Param* p : {L.ln1_w, L.ln1_b, L.in_w, L.in_b, L.out_w, L.out_b, L.ln2_w, L.ln2_b, L.fc1_w, L.fc1_b, L.fc2_w,
                     L.fc2_b})
      out.push_back(p);
  out.push_back(norm_w_);
  out.push_back(norm_b_);
  return out;
}

void VisionTower::init_weights(Rng& rng) {
  auto fill = [](Param* p, auto draw) {
    Tensor t = Tensor::empty(p->value.shape());
    float* x = t.data<float>();
    for (int64_t i = 0, n = t.numel(); i < n; ++i) x[i] = float(draw());
    p->value.copy_from(t);
  };
  auto constant = [&](Param* p, double v) { fill(p, [v] { return v; }); };
  auto xavier = [&](Param* p) {
    const double bound = std::sqrt(6.0 / double(p->value.size(0) + p->value.size(1)));
    fill(p, [&] { return rng.uniform(-bound, bound); });
  };
  const double conv_std = std::sqrt(1.0 / double(3 * cfg_.patch * cfg_.patch));
  fill(patch_w_, [&] { return conv_std * rng.normal(); });
  constant(patch_b_, 0.0);
  fill(pos_, [&] { return 0.02 * rng.normal(); });
  for (const Layer& L : layers_) {
    for (Param* p : {L.ln1_w, L.ln2_w}) constant(p, 1.0);
    for (Param* p : {L.ln1_b, L.ln2_b, L.in_b, L.out_b, L.fc1_b, L.fc2_b}) constant(p, 0.0);
    for (Param* p : {L.in_w, L.out_w, L.fc1_w, L.fc2_w}) xavier(p);
  }
  constant(norm_w_, 1.0);
  constant(norm_b_, 0.0);
}

Tensor VisionTower::embed(const Tensor& pixels) const {
  const int64_t D = cfg_.hidden, P = cfg_.num_patches();
  TV_CHECK(pixels.ndim() == 4 && pixels.size(1) == 3 && pixels.size(2) == cfg_.image && pixels.size(3) == cfg_.image,
           "vision tower: pixels should be [B, 3, ", cfg_.image, ", ", cfg_.image, "], got ", pixels.describe());
  const int64_t B = pixels.size(0);
  Tensor x = Tensor::empty({B, P, D}, pixels.dtype(), pixels.device());
  ops::patch_embed_fwd(x, pixels, patch_w_->value, &patch_b_->value);
  // The class token's position (row 0) is not used: the phase-2 model keeps only the patch tokens.
  Tensor pos = pos_->value.view({P + 1, D}).narrow(0, 1, P);
  for (int64_t b = 0; b < B; ++b) {
    Tensor xb = x.select(b);
    ops::add_(xb, pos);
  }
  return x;
}

Tensor VisionTower::forward_chunk(const Tensor& pixels) const {
  const int64_t D = cfg_.hidden, P = cfg_.num_patches(), H = cfg_.heads, Dh = D / H, B = pixels.size(0);
  const int64_t N = B * P;
  const DType dt = pixels.dtype();
  const Device dev = pixels.device();
  Tensor x = embed(pixels).view({N, D});
  // Buffers reused by every layer.
  Tensor xn = Tensor::empty({N, D}, dt, dev), mean = Tensor::empty({N}, dt, dev), rstd = Tensor::empty({N}, dt, dev);
  Tensor q = Tensor::empty({N, D}, dt, dev), k = Tensor::empty({N, D}, dt, dev), v = Tensor::empty({N, D}, dt, dev);
  Tensor att = Tensor::empty({B, P, H, Dh}, dt, dev), o = Tensor::empty({N, D}, dt, dev);
  Tensor h = Tensor::empty({N, cfg_.mlp}, dt, dev), a = Tensor::empty({N, cfg_.mlp}, dt, dev);
  ops::AttentionParams ap;
  ap.scale = 1.0 / std::sqrt(double(Dh));
  ap.causal = false;
  for (const Layer& L : layers_) {
    // x = x + MHA(LN1(x)): in_proj rows [0, D) are q, [D, 2D) k, [2D, 3D) v; heads are consecutive channels.
    ops::layernorm_fwd(xn, mean, rstd, x, L.ln1_w->value, L.ln1_b->value, kLnEps);
    Tensor* qkv[3] = {&q, &k, &v};
    for (int64_t j = 0; j < 3; ++j) {
      Tensor w = L.in_w->value.narrow(0, j * D, D), b = L.in_b->value.narrow(0, j * D, D);
      ops::linear_fwd(*qkv[j], xn, w, &b);
    }
    ops::attention_fwd(att, nullptr, q.view({B, P, H, Dh}), k.view({B, P, H, Dh}), v.view({B, P, H, Dh}), ap);
    ops::linear_fwd(o, att.view({N, D}), L.out_w->value, &L.out_b->value);
    ops::add_(x, o);
    // x = x + MLP(LN2(x)), exact GELU.
    ops::layernorm_fwd(xn, mean, rstd, x, L.ln2_w->value, L.ln2_b->value, kLnEps);
    ops::linear_fwd(h, xn, L.fc1_w->value, &L.fc1_b->value);
    ops::gelu_fwd(a, h);
    ops::linear_fwd(o, a, L.fc2_w->value, &L.fc2_b->value);
    ops::add_(x, o);
  }
  Tensor out = Tensor::empty({N, D}, dt, dev);
  ops::layernorm_fwd(out, mean, rstd, x, norm_w_->value, norm_b_->value, kLnEps);
  return out.view({B, P, D});
}

Tensor VisionTower::forward(const Tensor& pixels, int64_t max_batch) const {
  TV_CHECK(pixels.ndim() == 4, "vision tower: pixels should be [B, 3, H, W], got ", pixels.describe());
  const int64_t B = pixels.size(0);
  if (max_batch <= 0 || B <= max_batch) return forward_chunk(pixels.contiguous());
  Tensor out = Tensor::empty({B, cfg_.num_patches(), cfg_.hidden}, pixels.dtype(), pixels.device());
  for (int64_t b0 = 0; b0 < B; b0 += max_batch) {
    int64_t n = std::min(max_batch, B - b0);
    Tensor part = forward_chunk(pixels.narrow(0, b0, n).contiguous());
    Tensor dst = out.narrow(0, b0, n);
    dst.copy_from(part);
  }
  return out;
}

std::string VisionTower::load(const TensorSource& file) {
  // Which layout: torchvision's own names, or a phase-2/3/4 checkpoint's.
  std::string layout, fprefix;
  if (file.has("conv_proj.weight")) {
    layout = "torchvision";
  } else {
    for (const char* p : {"vision_encoder.", "vlm.vision_encoder.", ""})
      if (file.has(std::string(p) + "patch_embed.weight")) {
        fprefix = p;
        layout = fprefix.empty() ? "vision tower" : fprefix + "*";
        break;
      }
  }
  if (layout.empty())
    fail(file.path(), ": no vision tower found (expected torchvision's conv_proj.weight or a checkpoint's "
                      "vision_encoder.patch_embed.weight)");
  auto file_name = [&](const std::string& ours) -> std::string {
    if (layout != "torchvision") return fprefix + ours;
    if (ours == "patch_embed.weight") return "conv_proj.weight";
    if (ours == "patch_embed.bias") return "conv_proj.bias";
    if (ours == "pos_embed") return "encoder.pos_embedding";
    if (ours.rfind("norm.", 0) == 0) return "encoder.ln." + ours.substr(5);
    if (ours.rfind("encoder.", 0) == 0) return "encoder.layers." + ours.substr(8);
    return ours;
  };
  // A file with more encoder layers than configured is a config mistake, not something to truncate silently.
  std::string extra = file_name("encoder.encoder_layer_" + std::to_string(cfg_.layers) + ".ln_1.weight");
  if (file.has(extra))
    fail(file.path(), ": the tower has more than vision_num_layers = ", cfg_.layers, " encoder layers (found ", extra,
         ")");
  for (Param* p : params()) {
    std::string ours = p->name.substr(prefix_.size());
    std::string fname = file_name(ours);
    if (!file.has(fname))
      fail(file.path(), ": missing tensor '", fname, "' (", layout, " layout; the config asks for ", cfg_.describe(), ")");
    Shape fs = file.shape(fname);
    if (fs != p->value.shape())
      fail(file.path(), ": tensor '", fname, "' has shape ", shape_str(fs), ", the tower expects ",
           shape_str(p->value.shape()), " (", cfg_.describe(),
           "; set vision_hidden_size, patch_size, image_size, vision_num_layers, vision_num_heads, vision_mlp_dim)");
    p->value.copy_from(file.get(fname, p->value.dtype()));
  }
  return layout;
}

uint64_t VisionTower::fingerprint() const {
  uint64_t h = 0xcbf29ce484222325ull;
  const int64_t dims[] = {cfg_.hidden, cfg_.patch, cfg_.image, cfg_.layers, cfg_.heads, cfg_.mlp, cfg_.resize};
  h = hash_bytes(h, dims, sizeof dims);
  for (Param* p : params()) {
    Tensor t = p->value.to(Device::CPU).contiguous();
    h = hash_bytes(h, p->name.data(), p->name.size());
    h = hash_bytes(h, t.raw(), t.nbytes());
  }
  return h;
}

// ---- projector ----------------------------------------------------------------------------------

Projector::Projector(int64_t in, int64_t hidden, int64_t out, ParamStore& store, const std::string& prefix) {
  w1_ = &store.add(prefix + "0.weight", {hidden, in});
  b1_ = &store.add(prefix + "0.bias", {hidden});
  w2_ = &store.add(prefix + "2.weight", {out, hidden});
  b2_ = &store.add(prefix + "2.bias", {out});
}

void Projector::init_weights(Rng& rng) {
  for (auto [w, b] : {std::pair{w1_, b1_}, std::pair{w2_, b2_}}) {
    const double bound = 1.0 / std::sqrt(double(w->value.size(1)));
    for (Param* p : {w, b}) {
      Tensor t = Tensor::empty(p->value.shape());
      for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = float(rng.uniform(-bound, bound));
      p->value.copy_from(t);
    }
  }
}

Tensor Projector::forward(const Tensor& x, bool save) {
  const int64_t N = x.size(0), F = w1_->value.size(0), O = w2_->value.size(0);
  TV_CHECK(x.ndim() == 2 && x.size(1) == w1_->value.size(1), "projector: input should be [N, ", w1_->value.size(1),
           "], got ", x.describe());
  Tensor h = Tensor::empty({N, F}, x.dtype(), x.device()), a = Tensor::empty({N, F}, x.dtype(), x.device());
  Tensor y = Tensor::empty({N, O}, x.dtype(), x.device());
  ops::linear_fwd(h, x, w1_->value, &b1_->value);
  ops::gelu_fwd(a, h);
  ops::linear_fwd(y, a, w2_->value, &b2_->value);
  if (save) {
    x_ = x;
    h_ = h;
    a_ = a;
  } else {
    x_ = h_ = a_ = Tensor();
  }
  return y;
}

Tensor Projector::backward(const Tensor& dy, bool want_dx) {
  TV_CHECK(h_.defined(), "Projector::backward without a saved forward");
  Tensor da = zeros_like(a_);
  ops::linear_bwd(&da, w2_->grad_for_backward(), b2_->grad_for_backward(), dy, a_, w2_->value);
  Tensor dh = zeros_like(h_);
  ops::gelu_bwd(dh, da, h_);
  Tensor dx = want_dx ? zeros_like(x_) : Tensor();
  ops::linear_bwd(want_dx ? &dx : nullptr, w1_->grad_for_backward(), b1_->grad_for_backward(), dh, x_, w1_->value);
  x_ = h_ = a_ = Tensor();
  return dx;
}

}  // namespace tv
