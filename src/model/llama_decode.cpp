// The batched decode step (Llama::forward_decode): the next token of n sequences of different lengths
// in one pass over the weights. The rows are the sequences' new tokens, [n, D] through every linear
// layer; only RoPE (each row at its own position), the cache writes and attention (each row over its own
// cache, ops::attention_decode_fwd) are per row. docs/spec.md section 2 defines the layers; this computes
// what layer_forward computes for one new position of each sequence.
//
// Decode-step overheads: every buffer lives in a DecodeWorkspace sized for the largest batch seen, so a
// step allocates no activations; the MoE picks of the few rows are bucketed by expert on the host in
// preallocated arrays (no Tensor built, no sort: one counting pass over n * k picks) and each expert's
// weights are read once for all the rows that picked it (one grouped product per weight matrix).
#include <algorithm>

#include "core/ops.h"
#include "model/llama.h"

namespace tv {

namespace {
constexpr double kNormEps = 1e-6;  // as llama.cpp's layers
}

struct DecodeWorkspace {
  int64_t rows = 0;  // buffers hold this many rows
  Device device = Device::CPU;
  DType dtype = DType::F32;
  // Flat buffers, viewed as [n, ...] per step.
  Tensor ids, x, xn, rstd, q, k, v, qn, kn, q_rstd, k_rstd, att, h, g, u, a;
  Tensor router_logits, probs, idx, w;           // MoE routing [n, E], [n, k]
  Tensor ex, eg, eu, ea, ey, erows, eslots, ew;  // the n * k picks, bucketed by expert
  Tensor logits;
  // Host side.
  std::vector<int32_t> ids_host, rows_host, slots_host;
  std::vector<int64_t> kv_len, offsets, fill;
  std::vector<const Tensor*> kc, vc;
  std::vector<std::vector<const Tensor*>> e_gate, e_up, e_down;  // per layer: the experts' weights
};

namespace {

// The first n * cols elements of a flat buffer as [n, cols].
Tensor rows_of(const Tensor& flat, int64_t n, int64_t cols) { return flat.narrow(0, 0, n * cols).view({n, cols}); }

// Host values into an i32 tensor of any device.
void put_i32(Tensor& dst, const std::vector<int32_t>& src, int64_t n) {
  if (dst.device() == Device::CPU) {
    std::copy(src.begin(), src.begin() + n, dst.data<int32_t>());
    return;
  }
  dst.narrow(0, 0, n).copy_from(Tensor::from_i32({n}, std::vector<int32_t>(src.begin(), src.begin() + n)));
}

}  // namespace

Tensor Llama::forward_decode(const std::vector<int32_t>& tokens, const std::vector<KVCache*>& caches) {
  const int64_t n = int64_t(tokens.size());
  const int64_t D = cfg_.d_model, H = cfg_.n_heads, Hkv = cfg_.n_kv_heads, Dh = cfg_.d_head(), V = cfg_.vocab_size;
  const int64_t E = cfg_.num_experts, K = cfg_.num_experts_per_tok;
  const int64_t F = std::max(cfg_.d_ff_standard, cfg_.d_expert);
  TV_CHECK(n > 0 && caches.size() == tokens.size(), "Llama::forward_decode: ", tokens.size(), " tokens and ",
           caches.size(), " caches (one each, at least one)");
  for (int64_t i = 0; i < n; ++i) {
    const KVCache* c = caches[size_t(i)];
    TV_CHECK(c && int64_t(c->k.size()) == cfg_.n_layers && int64_t(c->v.size()) == cfg_.n_layers,
             "Llama::forward_decode: row ", i, " has no cache of this model's ", cfg_.n_layers, " layers");
    TV_CHECK(c->len + 1 <= c->capacity, "KV cache full: row ", i, " holds ", c->len, " of ", c->capacity,
             " positions");
    TV_CHECK(tokens[size_t(i)] >= 0 && tokens[size_t(i)] < V, "Llama::forward_decode: token id ", tokens[size_t(i)],
             " of row ", i, " is outside the vocabulary of ", V);
    for (int64_t j = 0; j < i; ++j)
      TV_CHECK(caches[size_t(j)] != c, "Llama::forward_decode: rows ", j, " and ", i, " share one cache");
  }
  const Device dev = emb_->value.device();
  const DType dt = emb_->value.dtype();
  if (!decode_ws_) decode_ws_ = std::make_shared<DecodeWorkspace>();
  DecodeWorkspace& ws = *decode_ws_;
  if (ws.rows < n || ws.device != dev || ws.dtype != dt) {
    const int64_t R = n, P = n * K;
    auto buf = [&](int64_t count) { return Tensor::empty({count}, dt, dev); };
    ws.rows = R;
    ws.device = dev;
    ws.dtype = dt;
    ws.ids = Tensor::empty({R}, DType::I32, dev);
    ws.x = buf(R * D);
    ws.xn = buf(R * D);
    ws.h = buf(R * D);
    ws.rstd = buf(R);
    ws.q = buf(R * H * Dh);
    ws.qn = buf(R * H * Dh);
    ws.att = buf(R * H * Dh);
    ws.k = buf(R * Hkv * Dh);
    ws.v = buf(R * Hkv * Dh);
    ws.kn = buf(R * Hkv * Dh);
    ws.q_rstd = buf(R * H);
    ws.k_rstd = buf(R * Hkv);
    ws.g = buf(R * F);
    ws.u = buf(R * F);
    ws.a = buf(R * F);
    ws.router_logits = buf(R * E);
    ws.probs = buf(R * E);
    ws.idx = Tensor::empty({std::max<int64_t>(P, 1)}, DType::I32, dev);
    ws.w = buf(std::max<int64_t>(P, 1));
    ws.ex = buf(P * D);
    ws.ey = buf(P * D);
    ws.eg = buf(P * cfg_.d_expert);
    ws.eu = buf(P * cfg_.d_expert);
    ws.ea = buf(P * cfg_.d_expert);
    ws.erows = Tensor::empty({std::max<int64_t>(P, 1)}, DType::I32, dev);
    ws.eslots = Tensor::empty({std::max<int64_t>(P, 1)}, DType::I32, dev);
    ws.ew = buf(std::max<int64_t>(P, 1));
    ws.logits = buf(R * V);
    ws.rows_host.resize(size_t(P));
    ws.slots_host.resize(size_t(P));
    ws.offsets.resize(size_t(E + 1));
    ws.fill.resize(size_t(E + 1));
    ws.e_gate.assign(layers_.size(), {});
    ws.e_up.assign(layers_.size(), {});
    ws.e_down.assign(layers_.size(), {});
    for (size_t l = 0; l < layers_.size(); ++l)
      for (size_t e = 0; e < layers_[l].e_gate.size(); ++e) {
        ws.e_gate[l].push_back(&layers_[l].e_gate[e]->value);
        ws.e_up[l].push_back(&layers_[l].e_up[e]->value);
        ws.e_down[l].push_back(&layers_[l].e_down[e]->value);
      }
  }
  ws.ids_host.assign(tokens.begin(), tokens.end());
  ws.kv_len.resize(size_t(n));
  ws.kc.resize(size_t(n));
  ws.vc.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) ws.kv_len[size_t(i)] = caches[size_t(i)]->len + 1;

  Tensor ids = ws.ids.narrow(0, 0, n);
  put_i32(ids, ws.ids_host, n);
  Tensor x = rows_of(ws.x, n, D), xn = rows_of(ws.xn, n, D), h = rows_of(ws.h, n, D), rstd = ws.rstd.narrow(0, 0, n);
  Tensor q = rows_of(ws.q, n, H * Dh), k = rows_of(ws.k, n, Hkv * Dh), v = rows_of(ws.v, n, Hkv * Dh);
  Tensor qn = rows_of(ws.qn, n * H, Dh), kn = rows_of(ws.kn, n * Hkv, Dh);
  Tensor q_rstd = ws.q_rstd.narrow(0, 0, n * H), k_rstd = ws.k_rstd.narrow(0, 0, n * Hkv);
  Tensor att = ws.att.narrow(0, 0, n * H * Dh).view({n, H, Dh});
  ops::embedding_fwd(x, ids, emb_->value);

  for (LlamaLayer& L : layers_) {
    const size_t li = size_t(L.index);
    // Attention block: q, k, v of every row in one product each.
    ops::rmsnorm_fwd(xn, rstd, x, L.norm1->value, kNormEps);
    ops::linear_fwd(q, xn, L.wq->value, nullptr);
    ops::linear_fwd(k, xn, L.wk->value, nullptr);
    ops::linear_fwd(v, xn, L.wv->value, nullptr);
    ops::rmsnorm_fwd(qn, q_rstd, q.view({n * H, Dh}), L.q_norm->value, kNormEps);
    ops::rmsnorm_fwd(kn, k_rstd, k.view({n * Hkv, Dh}), L.k_norm->value, kNormEps);
    for (int64_t i = 0; i < n; ++i) {
      KVCache& c = *caches[size_t(i)];
      Tensor qi = qn.narrow(0, i * H, H).view({1, 1, H, Dh});
      Tensor ki = kn.narrow(0, i * Hkv, Hkv).view({1, 1, Hkv, Dh});
      if (!L.nope) {  // each row at its own position
        ops::rope_fwd(qi, qi, c.len, cfg_.rope_theta);
        ops::rope_fwd(ki, ki, c.len, cfg_.rope_theta);
      }
      c.k[li].narrow(1, c.len, 1).copy_from(ki);
      c.v[li].narrow(1, c.len, 1).copy_from(v.narrow(0, i, 1).view({1, 1, Hkv, Dh}));
      ws.kc[size_t(i)] = &c.k[li];
      ws.vc[size_t(i)] = &c.v[li];
    }
    ops::attention_decode_fwd(att, qn.view({n, H, Dh}), ws.kc, ws.vc, ws.kv_len, attention_scale(L),
                              L.nope ? 0 : cfg_.chunk_size);
    ops::linear_fwd(h, att.view({n, H * Dh}), L.wo->value, nullptr);
    ops::add_(h, x);  // h = x + attn

    // Feed-forward block; its output goes to x (dead once h holds the residual).
    ops::rmsnorm_fwd(xn, rstd, h, L.norm2->value, kNormEps);
    auto mlp = [&](Param& wg, Param& wu, Param& wd, int64_t Fi) {
      Tensor g = rows_of(ws.g, n, Fi), u = rows_of(ws.u, n, Fi), a = rows_of(ws.a, n, Fi);
      ops::linear_fwd(g, xn, wg.value, nullptr);
      ops::linear_fwd(u, xn, wu.value, nullptr);
      ops::swiglu_fwd(a, g, u);
      ops::linear_fwd(x, a, wd.value, nullptr);
    };
    if (!L.moe) {
      mlp(*L.w_gate, *L.w_up, *L.w_down, cfg_.d_ff_standard);
    } else {
      const int64_t P = n * K, Fe = cfg_.d_expert;
      Tensor logits = rows_of(ws.router_logits, n, E), probs = rows_of(ws.probs, n, E);
      Tensor idx = rows_of(ws.idx, n, K), w = rows_of(ws.w, n, K);
      ops::linear_fwd(logits, xn, L.router->value, nullptr);
      ops::moe_route_fwd(probs, idx, w, logits, int(K));
      mlp(*L.sh_gate, *L.sh_up, *L.sh_down, Fe);  // the shared expert
      // Bucket the picks by expert: offsets by counting, then each pick at its expert's next place
      // (rows in increasing order within an expert, as layer_forward's routing has them).
      const Tensor hidx = idx.to(Device::CPU);
      const int32_t* p = hidx.data<int32_t>();
      std::fill(ws.offsets.begin(), ws.offsets.end(), 0);
      for (int64_t t = 0; t < P; ++t) ++ws.offsets[size_t(p[t]) + 1];
      for (int64_t e = 0; e < E; ++e) {
        decode_stats_.experts_run += ws.offsets[size_t(e + 1)] > 0;
        ws.offsets[size_t(e + 1)] += ws.offsets[size_t(e)];
      }
      std::copy(ws.offsets.begin(), ws.offsets.end(), ws.fill.begin());
      for (int64_t r = 0; r < n; ++r)
        for (int64_t s = 0; s < K; ++s) {
          const int64_t at = ws.fill[size_t(p[r * K + s])]++;
          ws.rows_host[size_t(at)] = int32_t(r);
          ws.slots_host[size_t(at)] = int32_t(r * K + s);
        }
      Tensor erows = ws.erows.narrow(0, 0, P), eslots = ws.eslots.narrow(0, 0, P);
      put_i32(erows, ws.rows_host, P);
      put_i32(eslots, ws.slots_host, P);
      Tensor ex = rows_of(ws.ex, P, D), ey = rows_of(ws.ey, P, D), ew = rows_of(ws.ew, P, 1);
      Tensor eg = rows_of(ws.eg, P, Fe), eu = rows_of(ws.eu, P, Fe), ea = rows_of(ws.ea, P, Fe);
      ops::gather_rows(ex, xn, erows);
      ops::gather_rows(ew, w.view({P, 1}), eslots);
      // One grouped product per weight matrix: each expert's weights read once for all its rows; experts
      // no row picked are skipped.
      ops::linear_grouped_fwd(eg, ex, ws.e_gate[li], ws.offsets);
      ops::linear_grouped_fwd(eu, ex, ws.e_up[li], ws.offsets);
      ops::swiglu_fwd(ea, eg, eu);
      ops::linear_grouped_fwd(ey, ea, ws.e_down[li], ws.offsets);
      Tensor ewv = ew.view({P});
      ops::scatter_add_rows(x, ey, erows, &ewv);
    }
    ops::add_(x, h);  // out = h + ffn
  }
  for (KVCache* c : caches) ++c->len;
  ++decode_stats_.steps;
  decode_stats_.rows += n;
  Tensor logits = rows_of(ws.logits, n, V);
  ops::rmsnorm_fwd(xn, rstd, x, final_norm_->value, kNormEps);
  ops::linear_fwd(logits, xn, out_->value, nullptr);
  return logits;
}

}  // namespace tv
