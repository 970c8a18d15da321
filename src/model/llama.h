// The LLaMA-4-style decoder (docs/spec.md section 2): GQA with QK-norm, iRoPE (RoPE layers with chunked
// causal attention, NoPE layers with global causal attention and a learnable temperature), dense SwiGLU
// and top-k MoE feed-forward blocks, final RMSNorm and an untied vocabulary projection.
// llm.c style: one forward that keeps the activations the backward needs, one backward that
// accumulates into the parameter gradients. Only the blocks a layer uses are built.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"
#include "model/config.h"
#include "model/params.h"

namespace tv {

// Keys and values of every layer for incremental decoding of one sequence.
struct KVCache {
  std::vector<Tensor> k, v;  // per layer [1, capacity, Hkv, Dh]
  int64_t len = 0, capacity = 0;
};

struct LlamaLayer {
  int64_t index = 0;
  bool nope = false, moe = false;
  Param *norm1 = nullptr, *norm2 = nullptr;
  Param *wq = nullptr, *wk = nullptr, *wv = nullptr, *wo = nullptr, *q_norm = nullptr, *k_norm = nullptr,
        *temp = nullptr;
  Param *w_gate = nullptr, *w_up = nullptr, *w_down = nullptr;        // dense layers
  Param *router = nullptr, *sh_gate = nullptr, *sh_up = nullptr, *sh_down = nullptr;  // MoE layers
  std::vector<Param*> e_gate, e_up, e_down;
};

struct LayerActs;        // saved activations of one layer (llama.cpp)
struct DecodeWorkspace;  // buffers of the batched decode step, kept between steps (llama_decode.cpp)

class Llama {
 public:
  // Registers the parameters under their interchange names, prefixed (e.g. "llm." inside the VLM).
  Llama(const ModelConfig& cfg, ParamStore& store, const std::string& prefix = "");
  ~Llama();
  Llama(const Llama&) = delete;
  Llama& operator=(const Llama&) = delete;

  // docs/spec.md section 2.1 initialisation: embedding N(0, D^-1/2), Linear U(+-1/sqrt(fan_in)), gammas 1, temperature 1.
  void init_weights(Rng& rng);
  const ModelConfig& config() const { return cfg_; }
  const std::string& prefix() const { return prefix_; }
  Param& embedding() { return *emb_; }
  Param& output() { return *out_; }
  std::vector<LlamaLayer>& layers() { return layers_; }

  // ids i32 [N] -> embeddings [N, D]; the backward scatter-adds into the embedding gradient.
  Tensor embed(const Tensor& ids);
  void embed_backward(const Tensor& ids, const Tensor& dx);

  // x0 [B*S, D] (positions 0..S-1 in each of the B rows) -> logits [B*S, V]. With `save`, keeps what
  // backward() needs; aux_loss() then holds the summed load-balancing loss of the MoE layers.
  // With logit_rows (i32 [R], indices into the B*S positions), only those rows are normalised and
  // projected to the vocabulary: logits [R, V]. Phases 2-4 need logits only where there are labels.
  Tensor forward(const Tensor& x0, int64_t B, int64_t S, bool save, const Tensor* logit_rows = nullptr);
  // dlogits ([B*S, V], or [R, V] with logit_rows) of the last saved forward -> parameter gradients
  // (trainable ones only); the aux loss enters with weight aux_weight. Returns d x0 when want_dx0.
  Tensor backward(const Tensor& dlogits, double aux_weight, bool want_dx0);
  double aux_loss() const { return aux_loss_; }

  // The same forward and backward in three parts, for losses that never hold all the logits at once:
  // forward_hidden returns the last layer's output x [B*S, D] (or its logit_rows [R, D]) before the final
  // norm; head_loss runs the head and cross-entropy on x; backward_hidden takes d x and runs the layers'
  // backward. forward() and backward() are forward_hidden + head and head backward + backward_hidden.
  Tensor forward_hidden(const Tensor& x0, int64_t B, int64_t S, bool save, const Tensor* logit_rows = nullptr);
  Tensor backward_hidden(const Tensor& dx, double aux_weight, bool want_dx0);
  // Final RMSNorm, vocabulary projection and cross-entropy of rows x [n, D] against targets i32 [n]
  // (kIgnoreIndex: ignored), head_chunk_rows() rows at a time, so that the logits never take more than
  // head_chunk_rows() x V floats (a 32k vocabulary and 8 x 1024 tokens would otherwise hold 1 GiB of logits
  // and 1 GiB of their gradient). Returns the losses summed over the counted rows. With dx, also the
  // backward of their mean (sum / count): head parameter gradients, and dx [n, D] is set to the gradient for x.
  // With row_losses, also each row's loss [n] (0 on ignored rows), for losses that sum per sequence.
  // With row_scale ([n], x's dtype and device), the backward is that of sum_i row_scale[i] * loss_i instead
  // of the mean (phase 4: each sequence's weight in the DPO loss).
  // This is the one output layer and loss of every phase (lm_loss_step, vlm_loss_step, the DPO step).
  struct HeadLoss {
    double sum = 0;
    int64_t count = 0;
  };
  HeadLoss head_loss(const Tensor& x, const Tensor& targets, Tensor* dx, Tensor* row_losses = nullptr,
                     const Tensor* row_scale = nullptr);
  int64_t head_chunk_rows() const { return head_chunk_rows_; }
  void set_head_chunk_rows(int64_t rows);

  // Incremental decoding of one sequence: x0 [S_new, D] at positions cache.len..; returns the logits of
  // the last new position [1, V] (or of every new position [S_new, V] when all_logits).
  KVCache make_cache(int64_t capacity) const;
  Tensor forward_cached(const Tensor& x0, KVCache& cache, bool all_logits = false);

  // One decode step of n sequences at once (llama_decode.cpp): tokens[i] enters the sequence whose cache
  // is caches[i] at its position caches[i]->len, which then grows by one. The n rows go through every
  // linear layer together ([n, D]: each weight read once per step), RoPE at each row's own position,
  // attention of each row over its own cache, the MoE experts over the rows that picked them. Returns
  // the logits [n, V]: a view of buffers kept between calls, valid until the next call. Steps of no more
  // rows than an earlier one allocate no buffers. Not reentrant (one caller at a time per Llama).
  Tensor forward_decode(const std::vector<int32_t>& tokens, const std::vector<KVCache*>& caches);
  // Counts of the decode steps so far, for benchmarks: steps, rows, and the experts the MoE layers
  // ran (summed over layers and steps; each one's weights were read once in its step).
  struct DecodeStats {
    int64_t steps = 0, rows = 0, experts_run = 0;
  };
  const DecodeStats& decode_stats() const { return decode_stats_; }

 private:
  Tensor layer_forward(LlamaLayer& L, const Tensor& x, int64_t B, int64_t S, LayerActs* acts, KVCache* cache);
  Tensor layer_backward(LlamaLayer& L, LayerActs& a, const Tensor& dout, int64_t B, int64_t S, double aux_weight);
  double attention_scale(const LlamaLayer& L) const;
  // Final RMSNorm and vocabulary projection of rows x [n, D] -> logits [n, V]; rstd and xn are kept for backward.
  Tensor head(const Tensor& x, Tensor& rstd, Tensor& xn) const;

  ModelConfig cfg_;
  std::string prefix_;
  Param *emb_ = nullptr, *final_norm_ = nullptr, *out_ = nullptr;
  std::vector<LlamaLayer> layers_;
  // Saved by forward(save = true).
  std::vector<std::unique_ptr<LayerActs>> acts_;
  Tensor x_final_, final_rstd_, xn_final_, logit_rows_;
  int64_t saved_B_ = 0, saved_S_ = 0;
  int64_t head_chunk_rows_ = 2048;
  double aux_loss_ = 0;
  std::shared_ptr<DecodeWorkspace> decode_ws_;
  DecodeStats decode_stats_;
};

// Phase-1 loss: mean CE over the targets that are not ignore_index, plus aux_weight * aux.
struct LmLoss {
  double ce = 0, aux = 0, loss = 0;
  int64_t tokens = 0;
};
// One forward (and, with `backward`, the backward) of the language-model loss on ids/targets i32 [B, S].
LmLoss lm_loss_step(Llama& model, const Tensor& ids, const Tensor& targets, double aux_weight, bool backward);

}  // namespace tv
