#include "model/llama.h"

#include <cmath>

#include "core/ops.h"
#include "core/precision.h"

namespace tv {

namespace {

constexpr double kNormEps = 1e-6;

// The (token, slot) picks of a MoE layer sorted by expert, so that one grouped GEMM runs every expert
// over its own rows: expert e owns rows [offsets[e], offsets[e + 1]) of the sorted picks, its tokens in
// increasing order.
struct ExpertRouting {
  Tensor rows;                   // i32 [N*k]: the token of each sorted pick
  Tensor slots;                  // i32 [N*k]: where its weight sits in w [N*k] (n * k + slot)
  std::vector<int64_t> offsets;  // [E + 1]
  Tensor w;                      // [N*k] routing weight of each sorted pick
  Tensor x, g, u, a, y;          // saved: gathered input, gate, up, swiglu, expert output
};

Tensor zeros_like(const Tensor& t) { return Tensor::zeros(t.shape(), t.dtype(), t.device()); }
Tensor empty_like(const Tensor& t) { return Tensor::empty(t.shape(), t.dtype(), t.device()); }

// The NoPE temperature tau = softplus(t) + 0.5 of a layer's temp_scale parameter t (softplus computed stably).
double nope_temperature(double t) { return (t > 20 ? t : std::log1p(std::exp(t))) + 0.5; }
double scalar_value(const Param& p) { return double(p.value.to(Device::CPU).data<float>()[0]); }

// Sorts the (token, slot) picks by expert (a stable counting sort: tokens stay in increasing order).
// Reads idx on the host.
ExpertRouting route_by_expert(const Tensor& idx, int64_t E) {
  Tensor hidx = idx.to(Device::CPU);
  const int32_t* p = hidx.data<int32_t>();
  const int64_t N = idx.size(0), k = idx.size(1);
  ExpertRouting r;
  r.offsets.assign(size_t(E + 1), 0);
  for (int64_t i = 0; i < N * k; ++i) ++r.offsets[size_t(p[i]) + 1];
  for (int64_t e = 0; e < E; ++e) r.offsets[size_t(e + 1)] += r.offsets[size_t(e)];
  std::vector<int32_t> rows(size_t(N * k)), slots(size_t(N * k));
  std::vector<int64_t> fill(r.offsets.begin(), r.offsets.end() - 1);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t s = 0; s < k; ++s) {
      const int64_t at = fill[size_t(p[n * k + s])]++;
      rows[size_t(at)] = int32_t(n);
      slots[size_t(at)] = int32_t(n * k + s);
    }
  r.rows = Tensor::from_i32({N * k}, rows).to(idx.device());
  r.slots = Tensor::from_i32({N * k}, slots).to(idx.device());
  return r;
}

// The weights of several Params (the experts of a layer, or q, k and v) as the ops want them.
std::vector<const Tensor*> param_values(const std::vector<Param*>& ps) {
  std::vector<const Tensor*> w;
  for (Param* p : ps) w.push_back(&p->value);
  return w;
}
// The weight gradients of several Params and how each is to be written (Param::grad_for_write). With
// offsets (the experts' rows), an expert without tokens gets none and stays unused, as in PyTorch.
struct GradWrites {
  std::vector<Tensor*> grads;
  std::vector<ops::GradMode> modes;
};
GradWrites grad_writes(const std::vector<Param*>& ps, const std::vector<int64_t>* offsets = nullptr) {
  GradWrites g;
  for (size_t e = 0; e < ps.size(); ++e) {
    const bool used = !offsets || (*offsets)[e + 1] > (*offsets)[e];
    Param::GradWrite w = used ? ps[e]->grad_for_write() : Param::GradWrite{};
    g.grads.push_back(w.grad);
    g.modes.push_back(w.mode);
  }
  return g;
}

void grouped_bwd(Tensor* dx, const std::vector<Param*>& ps, const std::vector<int64_t>& offsets, const Tensor& dy,
                 const Tensor& x, ops::GradMode dx_mode = ops::GradMode::Accumulate) {
  GradWrites g = grad_writes(ps, &offsets);
  ops::linear_grouped_bwd(dx, g.grads, dy, x, param_values(ps), offsets, dx_mode, g.modes);
}

// linear_bwd of a weight held by a Param: its gradient written or accumulated as the Param says.
void param_linear_bwd(Tensor* dx, Param& w, const Tensor& dy, const Tensor& x,
                      ops::GradMode dx_mode = ops::GradMode::Accumulate) {
  Param::GradWrite g = w.grad_for_write();
  ops::linear_bwd(dx, g.grad, nullptr, dy, x, w.value, dx_mode, g.mode);
}

// The same for several weights fed by one input x (q, k, v; gate, up): dx gets the sum.
void params_linear_bwd(Tensor* dx, const std::vector<Param*>& ws, const std::vector<const Tensor*>& dys,
                       const Tensor& x, ops::GradMode dx_mode = ops::GradMode::Accumulate) {
  GradWrites g = grad_writes(ws);
  ops::linear_bwd_shared_input(dx, g.grads, dys, x, param_values(ws), dx_mode, g.modes);
}


void swiglu_mlp_fwd(const Tensor& x, Param& wg, Param& wu, Param& wd, Tensor& g, Tensor& u, Tensor& a, Tensor& y) {
  int64_t n = x.size(0), F = wg.value.size(0), D = wd.value.size(0);
  g = Tensor::empty({n, F}, x.dtype(), x.device());
  u = Tensor::empty({n, F}, x.dtype(), x.device());
  a = Tensor::empty({n, F}, x.dtype(), x.device());
  y = Tensor::empty({n, D}, x.dtype(), x.device());
  ops::linear_fwd(g, x, wg.value, nullptr);
  ops::linear_fwd(u, x, wu.value, nullptr);
  ops::swiglu_fwd(a, g, u);
  ops::linear_fwd(y, a, wd.value, nullptr);
}

// dx += d(x)/..., weight gradients into the trainable params.
void swiglu_mlp_bwd(Tensor& dx, const Tensor& dy, const Tensor& x, Param& wg, Param& wu, Param& wd, const Tensor& g,
                    const Tensor& u, const Tensor& a, ops::GradMode dx_mode) {
  Tensor da = empty_like(a), dg = empty_like(g), du = empty_like(u);  // fresh: written, not accumulated
  param_linear_bwd(&da, wd, dy, a, ops::GradMode::Overwrite);
  ops::swiglu_bwd(&dg, &du, da, g, u, ops::GradMode::Overwrite);
  params_linear_bwd(&dx, {&wg, &wu}, {&dg, &du}, x, dx_mode);
}

}  // namespace

struct LayerActs {
  Tensor x, rstd1, xn1, q, k, v, q_rstd, k_rstd, qr, kr, att, lse, h, rstd2, xn2;
  // dense
  Tensor g, u, a;
  // MoE
  Tensor logits, probs, idx, w, sg, su, sa;
  ExpertRouting routing;
};

Llama::Llama(const ModelConfig& cfg, ParamStore& store, const std::string& prefix) : cfg_(cfg), prefix_(prefix) {
  cfg_.validate("model config");
  const int64_t D = cfg.d_model, Dh = cfg.d_head(), H = cfg.n_heads, Hkv = cfg.n_kv_heads;
  auto P = [&](const std::string& name, const Shape& s) { return &store.add(prefix + name, s); };
  emb_ = P("emb.emb.weight", {cfg.vocab_size, D});
  for (int64_t i = 0; i < cfg.n_layers; ++i) {
    LlamaLayer L;
    L.index = i;
    L.nope = cfg.is_nope(i);
    L.moe = cfg.is_moe(i);
    std::string p = "decoder_layers." + std::to_string(i) + ".";
    L.norm1 = P(p + "rms_norm1.gamma", {D});
    L.norm2 = P(p + "rms_norm2.gamma", {D});
    L.wq = P(p + "mha.w_q.weight", {H * Dh, D});
    L.wk = P(p + "mha.w_k.weight", {Hkv * Dh, D});
    L.wv = P(p + "mha.w_v.weight", {Hkv * Dh, D});
    L.q_norm = P(p + "mha.q_norm.gamma", {Dh});
    L.k_norm = P(p + "mha.k_norm.gamma", {Dh});
    L.temp = P(p + "mha.temp_scale", {});
    L.wo = P(p + "mha.proj_out.weight", {D, D});
    if (!L.moe) {
      std::string f = p + "ffn.dense_ffn_block.";
      L.w_gate = P(f + "w_gate.weight", {cfg.d_ff_standard, D});
      L.w_up = P(f + "w_up.weight", {cfg.d_ff_standard, D});
      L.w_down = P(f + "w_down.weight", {D, cfg.d_ff_standard});
    } else {
      std::string f = p + "ffn.moe_ffn_block.";
      const int64_t F = cfg.d_expert;
      L.router = P(f + "gate.w_router.weight", {cfg.num_experts, D});
      L.sh_gate = P(f + "shared_expert.w_gate.weight", {F, D});
      L.sh_up = P(f + "shared_expert.w_up.weight", {F, D});
      L.sh_down = P(f + "shared_expert.w_down.weight", {D, F});
      for (int64_t e = 0; e < cfg.num_experts; ++e) {
        std::string x = f + "experts." + std::to_string(e) + ".";
        L.e_gate.push_back(P(x + "w_gate.weight", {F, D}));
        L.e_up.push_back(P(x + "w_up.weight", {F, D}));
        L.e_down.push_back(P(x + "w_down.weight", {D, F}));
      }
    }
    layers_.push_back(L);
  }
  final_norm_ = P("rms_norm.gamma", {D});
  out_ = P("proj_vocab.weight", {cfg.vocab_size, D});
}

Llama::~Llama() = default;

void Llama::init_weights(Rng& rng) {
  auto normal = [&](Param* p, double std) {
    Tensor t = Tensor::empty(p->value.shape());
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = float(rng.normal() * std);
    p->value.copy_from(t);
  };
  auto kaiming = [&](Param* p) {
    double bound = 1.0 / std::sqrt(double(p->value.size(1)));
    Tensor t = Tensor::empty(p->value.shape());
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = float(rng.uniform(-bound, bound));
    p->value.copy_from(t);
  };
  auto ones = [&](Param* p) {
    Tensor t = Tensor::empty(p->value.shape());
    t.fill_(1.0);
    p->value.copy_from(t);
  };
  normal(emb_, 1.0 / std::sqrt(double(cfg_.d_model)));
  for (LlamaLayer& L : layers_) {
    ones(L.norm1);
    ones(L.norm2);
    ones(L.q_norm);
    ones(L.k_norm);
    ones(L.temp);
    for (Param* p : {L.wq, L.wk, L.wv, L.wo, L.w_gate, L.w_up, L.w_down, L.router, L.sh_gate, L.sh_up, L.sh_down})
      if (p) kaiming(p);
    for (auto* v : {&L.e_gate, &L.e_up, &L.e_down})
      for (Param* p : *v) kaiming(p);
  }
  ones(final_norm_);
  kaiming(out_);
}

Tensor Llama::embed(const Tensor& ids) {
  Tensor flat = ids.view({-1});
  Tensor x = Tensor::empty({flat.size(0), cfg_.d_model}, DType::F32, ids.device());
  ops::embedding_fwd(x, flat, emb_->value);
  return x;
}

void Llama::embed_backward(const Tensor& ids, const Tensor& dx) {
  if (Tensor* g = emb_->grad_for_backward()) ops::embedding_bwd(*g, dx, ids.view({-1}));
}

double Llama::attention_scale(const LlamaLayer& L) const {
  double s = 1.0 / std::sqrt(double(cfg_.d_head()));
  if (!L.nope) return s;
  return s / nope_temperature(scalar_value(*L.temp));  // NoPE: scores / (softplus(t) + 0.5)
}

Tensor Llama::layer_forward(LlamaLayer& L, const Tensor& x, int64_t B, int64_t S, LayerActs* A, KVCache* cache) {
  const int64_t N = B * S, D = cfg_.d_model, H = cfg_.n_heads, Hkv = cfg_.n_kv_heads, Dh = cfg_.d_head();
  const DType dt = x.dtype();
  const Device dev = x.device();
  LayerActs tmp;
  LayerActs& a = A ? *A : tmp;
  a.x = x;

  // Attention block.
  a.rstd1 = Tensor::empty({N}, dt, dev);
  a.xn1 = Tensor::empty({N, D}, dt, dev);
  ops::rmsnorm_fwd(a.xn1, a.rstd1, x, L.norm1->value, kNormEps);
  a.q = Tensor::empty({N, H * Dh}, dt, dev);
  a.k = Tensor::empty({N, Hkv * Dh}, dt, dev);
  a.v = Tensor::empty({N, Hkv * Dh}, dt, dev);
  ops::linear_fwd(a.q, a.xn1, L.wq->value, nullptr);
  ops::linear_fwd(a.k, a.xn1, L.wk->value, nullptr);
  ops::linear_fwd(a.v, a.xn1, L.wv->value, nullptr);
  a.q_rstd = Tensor::empty({N * H}, dt, dev);
  a.k_rstd = Tensor::empty({N * Hkv}, dt, dev);
  Tensor qr = Tensor::empty({N * H, Dh}, dt, dev), kr = Tensor::empty({N * Hkv, Dh}, dt, dev);
  ops::rmsnorm_fwd(qr, a.q_rstd, a.q.view({N * H, Dh}), L.q_norm->value, kNormEps);
  ops::rmsnorm_fwd(kr, a.k_rstd, a.k.view({N * Hkv, Dh}), L.k_norm->value, kNormEps);
  a.qr = qr.view({B, S, H, Dh});
  a.kr = kr.view({B, S, Hkv, Dh});
  const int64_t pos0 = cache ? cache->len : 0;
  if (!L.nope) {
    ops::rope_fwd(a.qr, a.qr, pos0, cfg_.rope_theta);
    ops::rope_fwd(a.kr, a.kr, pos0, cfg_.rope_theta);
  }
  ops::AttentionParams ap;
  ap.scale = attention_scale(L);
  ap.chunk_size = L.nope ? 0 : cfg_.chunk_size;
  ap.causal = true;
  Tensor keys = a.kr, values = a.v.view({B, S, Hkv, Dh});
  if (cache) {
    TV_CHECK(B == 1, "the KV cache holds one sequence");
    TV_CHECK(cache->len + S <= cache->capacity, "KV cache full: ", cache->len, " + ", S, " > ", cache->capacity);
    Tensor& ck = cache->k[L.index];
    Tensor& cv = cache->v[L.index];
    Tensor kslot = ck.narrow(1, cache->len, S), vslot = cv.narrow(1, cache->len, S);
    kslot.copy_from(a.kr);
    vslot.copy_from(values);
    keys = ck.narrow(1, 0, cache->len + S);
    values = cv.narrow(1, 0, cache->len + S);
    ap.q_offset = cache->len;
  }
  a.att = Tensor::empty({B, S, H, Dh}, dt, dev);
  a.lse = Tensor::empty({B, H, S}, dt, dev);
  ops::attention_fwd(a.att, &a.lse, a.qr, keys, values, ap);
  Tensor o = Tensor::empty({N, D}, dt, dev);
  ops::linear_fwd(o, a.att.view({N, H * Dh}), L.wo->value, nullptr);
  ops::add_(o, x);  // h = x + attn
  a.h = o;

  // Feed-forward block.
  a.rstd2 = Tensor::empty({N}, dt, dev);
  a.xn2 = Tensor::empty({N, D}, dt, dev);
  ops::rmsnorm_fwd(a.xn2, a.rstd2, a.h, L.norm2->value, kNormEps);
  Tensor f;
  if (!L.moe) {
    swiglu_mlp_fwd(a.xn2, *L.w_gate, *L.w_up, *L.w_down, a.g, a.u, a.a, f);
  } else {
    const int64_t E = cfg_.num_experts, k = cfg_.num_experts_per_tok;
    a.logits = Tensor::empty({N, E}, dt, dev);
    ops::linear_fwd(a.logits, a.xn2, L.router->value, nullptr);
    a.probs = Tensor::empty({N, E}, dt, dev);
    a.idx = Tensor::empty({N, k}, DType::I32, dev);
    a.w = Tensor::empty({N, k}, dt, dev);
    ops::moe_route_fwd(a.probs, a.idx, a.w, a.logits, int(k));
    if (!cache) aux_loss_ += ops::moe_aux_loss_fwd(a.probs, a.idx);
    swiglu_mlp_fwd(a.xn2, *L.sh_gate, *L.sh_up, *L.sh_down, a.sg, a.su, a.sa, f);  // shared expert
    // Every expert over its own rows with grouped GEMMs: one call per weight matrix, not one per expert.
    ExpertRouting& r = a.routing;
    r = route_by_expert(a.idx, E);
    const int64_t P = N * k, F = cfg_.d_expert;
    r.x = Tensor::empty({P, D}, dt, dev);
    ops::gather_rows(r.x, a.xn2, r.rows);
    Tensor w1 = Tensor::empty({P, 1}, dt, dev);
    ops::gather_rows(w1, a.w.view({P, 1}), r.slots);
    r.w = w1.view({P});
    r.g = Tensor::empty({P, F}, dt, dev);
    r.u = Tensor::empty({P, F}, dt, dev);
    r.a = Tensor::empty({P, F}, dt, dev);
    r.y = Tensor::empty({P, D}, dt, dev);
    ops::linear_grouped_fwd(r.g, r.x, param_values(L.e_gate), r.offsets);
    ops::linear_grouped_fwd(r.u, r.x, param_values(L.e_up), r.offsets);
    ops::swiglu_fwd(r.a, r.g, r.u);
    ops::linear_grouped_fwd(r.y, r.a, param_values(L.e_down), r.offsets);
    ops::scatter_add_rows(f, r.y, r.rows, &r.w);
  }
  ops::add_(f, a.h);  // out = h + ffn
  return f;
}

Tensor Llama::forward_hidden(const Tensor& x0, int64_t B, int64_t S, bool save, const Tensor* logit_rows) {
  TV_CHECK(x0.ndim() == 2 && x0.size(0) == B * S && x0.size(1) == cfg_.d_model, "Llama::forward: x0 should be [",
           B * S, ",", cfg_.d_model, "], got ", x0.describe());
  aux_loss_ = 0;
  acts_.clear();
  Tensor x = x0;
  for (LlamaLayer& L : layers_) {
    std::unique_ptr<LayerActs> a;
    if (save) a = std::make_unique<LayerActs>();
    x = layer_forward(L, x, B, S, a.get(), nullptr);
    if (save) acts_.push_back(std::move(a));
  }
  if (logit_rows) {  // RMSNorm is per row, so selecting before the final norm changes nothing for those rows
    Tensor sel = Tensor::empty({logit_rows->numel(), cfg_.d_model}, x.dtype(), x.device());
    ops::gather_rows(sel, x, *logit_rows);
    x = sel;
  }
  if (save) {
    logit_rows_ = logit_rows ? *logit_rows : Tensor();
    saved_B_ = B;
    saved_S_ = S;
  }
  return x;
}

Tensor Llama::forward(const Tensor& x0, int64_t B, int64_t S, bool save, const Tensor* logit_rows) {
  Tensor x = forward_hidden(x0, B, S, save, logit_rows);
  Tensor rstd, xn;
  Tensor logits = head(x, rstd, xn);
  if (save) {
    x_final_ = x;
    final_rstd_ = rstd;
    xn_final_ = xn;
  }
  return logits;
}

void Llama::set_head_chunk_rows(int64_t rows) {
  TV_CHECK(rows > 0, "head chunk rows must be positive, got ", rows);
  head_chunk_rows_ = rows;
}

Llama::HeadLoss Llama::head_loss(const Tensor& x, const Tensor& targets, Tensor* dx, Tensor* row_losses,
                                 const Tensor* row_scale) {
  const int64_t n = x.size(0), D = cfg_.d_model, V = cfg_.vocab_size;
  TV_CHECK(x.ndim() == 2 && x.size(1) == D && targets.numel() == n && targets.dtype() == DType::I32,
           "Llama::head_loss: x [n, ", D, "] and targets i32 [n], got ", x.describe(), " and ", targets.describe());
  TV_CHECK(!row_scale || (row_scale->numel() == n && row_scale->dtype() == x.dtype() && row_scale->device() == x.device()),
           "Llama::head_loss: row_scale should be [", n, "] like x, got ", row_scale ? row_scale->describe() : "");
  HeadLoss r;
  const Tensor ht = targets.to(Device::CPU);  // the count scales the gradient; the sum skips the same rows
  for (int64_t i = 0; i < n; ++i) r.count += ht.data<int32_t>()[i] != kIgnoreIndex;
  Tensor rstd = Tensor::empty({n}, x.dtype(), x.device()), xn = Tensor::empty(x.shape(), x.dtype(), x.device());
  ops::rmsnorm_fwd(xn, rstd, x, final_norm_->value, kNormEps);
  Tensor losses = Tensor::empty({n}, x.dtype(), x.device()), lse;
  Tensor tflat = targets.view({n});
  Tensor dxn = dx ? Tensor::empty({n, D}, x.dtype(), x.device()) : Tensor();  // every chunk overwrites its rows
  if (!dx) lse = Tensor::empty({n}, x.dtype(), x.device());
  // With the backward, the loss and its gradient come from one pass that overwrites the logits.
  // With bf16 matmuls the two products that read the logits' gradient round it to bf16 anyway: writing
  // it in bf16 gives the same bits and halves what they read. The logits themselves are then never
  // stored (linear_cross_entropy_with_grad turns each block of rows into the loss while it is in cache).
  // (Per-row scales are applied to the fp32 gradient, so they take the fp32 path.)
  const bool bf16_grad = dx && !row_scale && x.dtype() == DType::F32 && matmul_precision() == MatmulPrecision::BF16;
  const int64_t rows = std::min(n, head_chunk_rows_);
  Tensor logits = bf16_grad ? Tensor() : Tensor::empty({rows, V}, x.dtype(), x.device());
  Tensor dl16 = bf16_grad ? Tensor::empty({rows, V}, DType::BF16, x.device()) : Tensor();
  for (int64_t r0 = 0; r0 < n; r0 += head_chunk_rows_) {
    const int64_t m = std::min(head_chunk_rows_, n - r0);
    Tensor xc = xn.narrow(0, r0, m), tc = tflat.narrow(0, r0, m), lc = losses.narrow(0, r0, m);
    if (!dx) {
      Tensor lg = logits.narrow(0, 0, m), sc = lse.narrow(0, r0, m);
      ops::linear_fwd(lg, xc, out_->value, nullptr);
      ops::cross_entropy_fwd(lc, sc, lg, tc);
      continue;
    }
    const double scale = row_scale ? 1.0 : r.count ? 1.0 / double(r.count) : 0.0;
    Tensor dxc = dxn.narrow(0, r0, m);
    Tensor d = bf16_grad ? dl16.narrow(0, 0, m) : logits.narrow(0, 0, m);
    ops::linear_cross_entropy_with_grad(lc, d, xc, out_->value, tc, scale);
    if (row_scale) ops::scale_rows(d, d, row_scale->narrow(0, r0, m));
    param_linear_bwd(&dxc, *out_, d, xc, ops::GradMode::Overwrite);
  }
  Tensor hl = losses.to(Device::CPU).to(DType::F64);
  for (int64_t i = 0; i < n; ++i)
    if (ht.data<int32_t>()[i] != kIgnoreIndex) r.sum += hl.data<double>()[i];
  if (dx) {
    *dx = Tensor::empty({n, D}, x.dtype(), x.device());
    ops::rmsnorm_bwd(dx, final_norm_->grad_for_backward(), dxn, x, final_norm_->value, rstd, ops::GradMode::Overwrite);
  }
  if (row_losses) *row_losses = losses;
  return r;
}

Tensor Llama::layer_backward(LlamaLayer& L, LayerActs& a, const Tensor& dout, int64_t B, int64_t S,
                             double aux_weight) {
  const int64_t N = B * S, D = cfg_.d_model, H = cfg_.n_heads, Hkv = cfg_.n_kv_heads, Dh = cfg_.d_head();
  // out = h + ffn(rmsnorm2(h)): dh = dout + rmsnorm2'(ffn'(dout)).
  Tensor dh = dout.clone();
  Tensor dxn2 = empty_like(a.xn2);  // the first product overwrites it, the others add
  if (!L.moe) {
    swiglu_mlp_bwd(dxn2, dout, a.xn2, *L.w_gate, *L.w_up, *L.w_down, a.g, a.u, a.a, ops::GradMode::Overwrite);
  } else {
    const int64_t k = cfg_.num_experts_per_tok;
    swiglu_mlp_bwd(dxn2, dout, a.xn2, *L.sh_gate, *L.sh_up, *L.sh_down, a.sg, a.su, a.sa, ops::GradMode::Overwrite);
    Tensor dw = zeros_like(a.w);
    ExpertRouting& r = a.routing;
    const int64_t P = N * k;
    Tensor gout = Tensor::empty({P, D}, dout.dtype(), dout.device());
    ops::gather_rows(gout, dout, r.rows);
    Tensor dwe = Tensor::empty({P}, dout.dtype(), dout.device());
    ops::row_dot(dwe, gout, r.y);  // d w = dout . expert output
    Tensor dwflat = dw.view({P, 1});
    ops::scatter_add_rows(dwflat, dwe.view({P, 1}), r.slots, nullptr);
    Tensor dy = Tensor::empty({P, D}, dout.dtype(), dout.device());
    ops::scale_rows(dy, gout, r.w);
    // Every sorted pick belongs to one expert, so the grouped products write every row: no zeroing.
    Tensor da = empty_like(r.a), dg = empty_like(r.g), du = empty_like(r.u), dx = empty_like(r.x);
    grouped_bwd(&da, L.e_down, r.offsets, dy, r.a, ops::GradMode::Overwrite);
    ops::swiglu_bwd(&dg, &du, da, r.g, r.u, ops::GradMode::Overwrite);
    grouped_bwd(&dx, L.e_gate, r.offsets, dg, r.x, ops::GradMode::Overwrite);
    grouped_bwd(&dx, L.e_up, r.offsets, du, r.x);
    ops::scatter_add_rows(dxn2, dx, r.rows, nullptr);
    Tensor dprobs = zeros_like(a.probs);
    if (aux_weight != 0) ops::moe_aux_loss_bwd(dprobs, aux_weight, a.probs, a.idx);
    Tensor dlogits = zeros_like(a.logits);
    ops::moe_route_bwd(dlogits, dw, &dprobs, a.probs, a.idx);
    param_linear_bwd(&dxn2, *L.router, dlogits, a.xn2);
  }
  ops::rmsnorm_bwd(&dh, L.norm2->grad_for_backward(), dxn2, a.h, L.norm2->value, a.rstd2);

  // h = x + proj_out(attn(rmsnorm1(x))).
  Tensor dx = dh.clone();
  Tensor datt = Tensor::empty({B, S, H, Dh}, dh.dtype(), dh.device());
  Tensor datt2 = datt.view({N, H * Dh});
  param_linear_bwd(&datt2, *L.wo, dh, a.att.view({N, H * Dh}), ops::GradMode::Overwrite);
  ops::AttentionParams ap;
  ap.scale = attention_scale(L);
  ap.chunk_size = L.nope ? 0 : cfg_.chunk_size;
  ap.causal = true;
  Tensor dqr = empty_like(a.qr), dkr = empty_like(a.kr), dv = Tensor::empty({B, S, Hkv, Dh}, dh.dtype(), dh.device());
  double dscale = 0;
  ops::attention_bwd(dqr, dkr, dv, L.nope ? &dscale : nullptr, datt, a.qr, a.kr, a.v.view({B, S, Hkv, Dh}), a.att,
                     a.lse, ap, ops::GradMode::Overwrite);
  if (L.nope) {
    // scale = 1 / (sqrt(Dh) * tau), tau = softplus(t) + 0.5: dt = dscale * dscale/dtau * sigmoid(t).
    if (Tensor* gt = L.temp->grad_for_backward()) {
      double t = scalar_value(*L.temp), tau = nope_temperature(t);
      double sig = 1.0 / (1.0 + std::exp(-t));
      double d = dscale * (-1.0 / (std::sqrt(double(Dh)) * tau * tau)) * sig;
      Tensor host = gt->to(Device::CPU).clone();
      host.data<float>()[0] += float(d);
      gt->copy_from(host);
    }
  }
  Tensor dqn = dqr, dkn = dkr;
  if (!L.nope) {
    // The inverse rotation in place: each element pair is read before it is written.
    ops::rope_bwd(dqn, dqr, 0, cfg_.rope_theta, ops::GradMode::Overwrite);
    ops::rope_bwd(dkn, dkr, 0, cfg_.rope_theta, ops::GradMode::Overwrite);
  }
  Tensor dq = Tensor::empty({N * H, Dh}, dh.dtype(), dh.device());
  Tensor dk = Tensor::empty({N * Hkv, Dh}, dh.dtype(), dh.device());
  ops::rmsnorm_bwd(&dq, L.q_norm->grad_for_backward(), dqn.view({N * H, Dh}), a.q.view({N * H, Dh}), L.q_norm->value,
                   a.q_rstd, ops::GradMode::Overwrite);
  ops::rmsnorm_bwd(&dk, L.k_norm->grad_for_backward(), dkn.view({N * Hkv, Dh}), a.k.view({N * Hkv, Dh}), L.k_norm->value,
                   a.k_rstd, ops::GradMode::Overwrite);
  Tensor dxn1 = empty_like(a.xn1);
  const Tensor dq2 = dq.view({N, H * Dh}), dk2 = dk.view({N, Hkv * Dh}), dv2 = dv.view({N, Hkv * Dh});
  params_linear_bwd(&dxn1, {L.wq, L.wk, L.wv}, {&dq2, &dk2, &dv2}, a.xn1, ops::GradMode::Overwrite);
  ops::rmsnorm_bwd(&dx, L.norm1->grad_for_backward(), dxn1, a.x, L.norm1->value, a.rstd1);
  return dx;
}

Tensor Llama::backward(const Tensor& dlogits, double aux_weight, bool want_dx0) {
  TV_CHECK(x_final_.defined(), "Llama::backward without a saved forward");
  Tensor dxn = zeros_like(xn_final_);
  param_linear_bwd(&dxn, *out_, dlogits, xn_final_);
  Tensor dx = zeros_like(x_final_);
  ops::rmsnorm_bwd(&dx, final_norm_->grad_for_backward(), dxn, x_final_, final_norm_->value, final_rstd_);
  x_final_ = xn_final_ = final_rstd_ = Tensor();
  return backward_hidden(dx, aux_weight, want_dx0);
}

Tensor Llama::backward_hidden(const Tensor& dx_last, double aux_weight, bool want_dx0) {
  TV_CHECK(!acts_.empty() || layers_.empty(), "Llama::backward without a saved forward");
  const int64_t B = saved_B_, S = saved_S_;
  Tensor dx = dx_last;
  if (logit_rows_.defined()) {  // back to every position; rows without logits get no gradient from the head
    Tensor full = Tensor::zeros({B * S, cfg_.d_model}, dx.dtype(), dx.device());
    ops::scatter_add_rows(full, dx, logit_rows_, nullptr);
    dx = full;
    logit_rows_ = Tensor();
  }
  for (int64_t i = int64_t(layers_.size()) - 1; i >= 0; --i) dx = layer_backward(layers_[i], *acts_[i], dx, B, S, aux_weight);
  acts_.clear();
  return want_dx0 ? dx : Tensor();
}

KVCache Llama::make_cache(int64_t capacity) const {
  KVCache c;
  c.capacity = capacity;
  Device dev = emb_->value.device();
  for (size_t i = 0; i < layers_.size(); ++i) {
    c.k.push_back(Tensor::zeros({1, capacity, cfg_.n_kv_heads, cfg_.d_head()}, DType::F32, dev));
    c.v.push_back(Tensor::zeros({1, capacity, cfg_.n_kv_heads, cfg_.d_head()}, DType::F32, dev));
  }
  return c;
}

Tensor Llama::forward_cached(const Tensor& x0, KVCache& cache, bool all_logits) {
  const int64_t S = x0.size(0);
  Tensor x = x0;
  for (LlamaLayer& L : layers_) x = layer_forward(L, x, 1, S, nullptr, &cache);
  cache.len += S;
  if (!all_logits) x = x.narrow(0, S - 1, 1).contiguous();
  Tensor rstd, xn;
  return head(x, rstd, xn);
}

Tensor Llama::head(const Tensor& x, Tensor& rstd, Tensor& xn) const {
  rstd = Tensor::empty({x.size(0)}, x.dtype(), x.device());
  xn = Tensor::empty(x.shape(), x.dtype(), x.device());
  ops::rmsnorm_fwd(xn, rstd, x, final_norm_->value, kNormEps);
  Tensor logits = Tensor::empty({x.size(0), cfg_.vocab_size}, x.dtype(), x.device());
  ops::linear_fwd(logits, xn, out_->value, nullptr);
  return logits;
}

LmLoss lm_loss_step(Llama& model, const Tensor& ids, const Tensor& targets, double aux_weight, bool backward) {
  TV_CHECK(ids.ndim() == 2 && targets.shape() == ids.shape(), "lm_loss_step: ids and targets must both be [B, S], got ",
           ids.describe(), " and ", targets.describe());
  const int64_t B = ids.size(0), S = ids.size(1), N = B * S;
  Tensor x0 = model.embed(ids);
  Tensor x = model.forward_hidden(x0, B, S, backward);
  Tensor dx;
  Llama::HeadLoss h = model.head_loss(x, targets.view({N}), backward ? &dx : nullptr);
  LmLoss r;
  r.tokens = h.count;
  r.ce = h.count ? h.sum / double(h.count) : 0.0;
  r.aux = model.aux_loss();
  r.loss = r.ce + aux_weight * r.aux;
  if (backward) {
    x = Tensor();
    Tensor dx0 = model.backward_hidden(dx, aux_weight, true);
    model.embed_backward(ids, dx0);
  }
  return r;
}

}  // namespace tv
