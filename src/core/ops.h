// The op list: every computation the models use, one forward and one backward per op.
//
// Conventions (all ops):
// - Tensors are contiguous and row-major. Float ops accept f32 or f64 (f64 exists for gradient checks);
//   all float arguments of one call share a dtype. Index tensors are i32.
// - Forward functions overwrite their outputs. Backward functions ACCUMULATE (+=) into every gradient
//   they are given, so gradients of shared inputs and micro-batches add up; a null gradient pointer
//   means "not needed" and is skipped.
// - Each op checks its arguments and dispatches on the device (src/ops/<op>.cpp) to the kernel of that
//   backend (src/kernels/cpu/<op>.cpp, later src/kernels/cuda/<op>.cu).
#pragma once
#include <cstdint>
#include <vector>

#include "core/grad_mode.h"
#include "core/ignore_index.h"
#include "core/tensor.h"

namespace tv::ops {

// ---- GEMM primitive: c = alpha * op(a) @ op(b) + beta * c, all 2-D.
void matmul(Tensor& c, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, double alpha = 1.0,
            double beta = 0.0);

// ---- linear: x [N, in], w [out, in] (PyTorch layout), b [out] or null -> y [N, out].
void linear_fwd(Tensor& y, const Tensor& x, const Tensor& w, const Tensor* b);

// Backward: dx_mode says whether dx is written or added to (core/grad_mode.h), dw_mode likewise for the
// weight gradient (Param::grad_for_write tells which applies); db is added to.
void linear_bwd(Tensor* dx, Tensor* dw, Tensor* db, const Tensor& dy, const Tensor& x, const Tensor& w,
                GradMode dx_mode = GradMode::Accumulate, GradMode dw_mode = GradMode::Accumulate);

// linear_bwd of several linears fed by the same x (the q, k and v projections; gate and up): dx gets the
// sum of their input gradients (dx_mode applies to the first), dw[i] their weight gradients (dw_modes[i]);
// the results of one linear_bwd per linear, in order. With bf16 matmuls the weight gradients of one mode
// are one grouped product that packs x once. Float dy.
void linear_bwd_shared_input(Tensor* dx, const std::vector<Tensor*>& dw, const std::vector<const Tensor*>& dy,
                             const Tensor& x, const std::vector<const Tensor*>& w,
                             GradMode dx_mode = GradMode::Accumulate, const std::vector<GradMode>& dw_modes = {});

// ---- grouped linear (the experts of a MoE layer, one call for all): x [R, in] holds every group's rows,
// group g owns rows [offsets[g], offsets[g+1]) and its weight w[g] [out, in]; y [R, out]. Same results
// as one linear per group. Backward: dx as dx_mode says, dw[g] as dw_modes[g] says (empty: all added
// to); a null dx, or a null dw[g], is skipped.
void linear_grouped_fwd(Tensor& y, const Tensor& x, const std::vector<const Tensor*>& w,
                        const std::vector<int64_t>& offsets);
void linear_grouped_bwd(Tensor* dx, const std::vector<Tensor*>& dw, const Tensor& dy, const Tensor& x,
                        const std::vector<const Tensor*>& w, const std::vector<int64_t>& offsets,
                        GradMode dx_mode = GradMode::Accumulate, const std::vector<GradMode>& dw_modes = {});

// ---- embedding: ids i32 [N], table [V, D] -> y [N, D]; backward scatter-adds rows: dtable[ids[n]] += dy[n].
void embedding_fwd(Tensor& y, const Tensor& ids, const Tensor& table);
void embedding_bwd(Tensor& dtable, const Tensor& dy, const Tensor& ids);

// ---- RMSNorm over the last dim: y = x / sqrt(mean(x^2) + eps) * gamma. x [N, D], gamma [D], rstd [N] saved.
void rmsnorm_fwd(Tensor& y, Tensor& rstd, const Tensor& x, const Tensor& gamma, double eps);
void rmsnorm_bwd(Tensor* dx, Tensor* dgamma, const Tensor& dy, const Tensor& x, const Tensor& gamma,
                 const Tensor& rstd, GradMode dx_mode = GradMode::Accumulate);

// ---- LayerNorm over the last dim with weight and bias. x [N, D]; mean, rstd [N] saved.
void layernorm_fwd(Tensor& y, Tensor& mean, Tensor& rstd, const Tensor& x, const Tensor& w, const Tensor& b,
                   double eps);
void layernorm_bwd(Tensor* dx, Tensor* dw, Tensor* db, const Tensor& dy, const Tensor& x, const Tensor& w,
                   const Tensor& mean, const Tensor& rstd);

// ---- interleaved RoPE: x [B, S, H, Dh]; pairs (2j, 2j+1) rotate by (pos_offset + s) * theta^(-2j/Dh).
// y may be x itself. The backward rotates by the opposite angle.
void rope_fwd(Tensor& y, const Tensor& x, int64_t pos_offset, double theta);
// dx may be dy itself only with GradMode::Overwrite.
void rope_bwd(Tensor& dx, const Tensor& dy, int64_t pos_offset, double theta,
              GradMode mode = GradMode::Accumulate);

// ---- softmax over the last dim.
void softmax_fwd(Tensor& y, const Tensor& x);
void softmax_bwd(Tensor& dx, const Tensor& dy, const Tensor& y);

// ---- activations, elementwise.
void silu_fwd(Tensor& y, const Tensor& x);
void silu_bwd(Tensor& dx, const Tensor& dy, const Tensor& x);
void swiglu_fwd(Tensor& h, const Tensor& gate, const Tensor& up);  // h = silu(gate) * up
void swiglu_bwd(Tensor* dgate, Tensor* dup, const Tensor& dh, const Tensor& gate, const Tensor& up,
                GradMode mode = GradMode::Accumulate);
void gelu_fwd(Tensor& y, const Tensor& x);  // exact: x * Phi(x) with erf
void gelu_bwd(Tensor& dx, const Tensor& dy, const Tensor& x);

// ---- attention (GQA; query head h reads kv head h / (H / Hkv)).
// q [B, Sq, H, Dh], k and v [B, Sk, Hkv, Dh] -> out [B, Sq, H, Dh]; lse [B, H, Sq] (log-sum-exp of the
// scaled scores per query row) is saved for the backward. Query i sits at absolute position q_offset + i,
// key j at position j. scores = scale * q.k. With causal, query m sees key n iff n <= m; with
// chunk_size > 0 additionally iff n / chunk_size == m / chunk_size. Tiled: memory never grows with
// Sq x Sk x heads. The backward also returns d(loss)/d(scale) (for the NoPE temperature) when asked;
// an undefined dq, dk or dv (Tensor()) is not computed. A query that sees no key gets zeros, lse -inf.
struct AttentionParams {
  double scale = 1.0;
  int64_t q_offset = 0;
  int64_t chunk_size = 0;  // 0: no chunking
  bool causal = true;
};
void attention_fwd(Tensor& out, Tensor* lse, const Tensor& q, const Tensor& k, const Tensor& v,
                   const AttentionParams& p);
// mode applies to dq, dk and dv alike.
void attention_bwd(Tensor& dq, Tensor& dk, Tensor& dv, double* dscale, const Tensor& dout, const Tensor& q,
                   const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse, const AttentionParams& p,
                   GradMode mode = GradMode::Accumulate);

// ---- decode attention: n new query rows, each of its own sequence, against that sequence's KV cache.
// q and out [n, H, Dh]; k[i] and v[i] [1, C_i, Hkv, Dh] the cache of row i, whose first kv_len[i]
// positions hold keys and values (the last of them the row's own, kv_len[i] <= C_i). Row i sits at
// position kv_len[i] - 1 and sees the keys causal attention with chunk_size gives it (0: no chunks):
// the same as attention_fwd with Sq = 1, Sk = kv_len[i], q_offset = kv_len[i] - 1, up to rounding (the
// sums run in another order). Forward only: inference.
void attention_decode_fwd(Tensor& out, const Tensor& q, const std::vector<const Tensor*>& k,
                          const std::vector<const Tensor*>& v, const std::vector<int64_t>& kv_len, double scale,
                          int64_t chunk_size);

// ---- MoE routing: logits [N, E] -> probs = softmax(logits) [N, E]; idx i32 [N, k] the top-k experts in
// descending probability (ties: lower index first); w [N, k] = their probabilities renormalised to sum 1.
// The backward takes dw (and, from the load-balancing loss, dprobs) back to dlogits.
void moe_route_fwd(Tensor& probs, Tensor& idx, Tensor& w, const Tensor& logits, int k);
void moe_route_bwd(Tensor& dlogits, const Tensor& dw, const Tensor* dprobs, const Tensor& probs, const Tensor& idx);

// ---- load-balancing loss E * sum_e f_e * P_e (f_e: share of (token, slot) picks, not differentiable;
// P_e: mean of probs[:, e]). The backward adds dloss * d/dprobs to dprobs.
double moe_aux_loss_fwd(const Tensor& probs, const Tensor& idx);
void moe_aux_loss_bwd(Tensor& dprobs, double dloss, const Tensor& probs, const Tensor& idx);

// ---- cross-entropy fused with log-softmax: logits [N, V], targets i32 [N]. losses [N] gets
// -log softmax(logits)[target] (0 where target == ignore_index), lse [N] the row log-sum-exp (ignored rows
// are skipped: 0). Targets must lie in [0, V) unless ignored.
// Returns the number of rows not ignored. Backward: dlogits[n] += dlosses[n] * (softmax - onehot).
int64_t cross_entropy_fwd(Tensor& losses, Tensor& lse, const Tensor& logits, const Tensor& targets,
                          int32_t ignore_index = kIgnoreIndex);
void cross_entropy_bwd(Tensor& dlogits, const Tensor& dlosses, const Tensor& logits, const Tensor& targets,
                       const Tensor& lse, int32_t ignore_index = kIgnoreIndex);
// The loss and its gradient in one pass over the logits, for training, where every row's loss is
// weighted by the same grad_scale (1 / count for a mean): losses as cross_entropy_fwd (the same bits),
// and dlogits is OVERWRITTEN with grad_scale * (softmax - onehot) (zeros on ignored rows). dlogits may be
// logits itself. Returns the number of rows not ignored.
int64_t cross_entropy_with_grad(Tensor& losses, Tensor& dlogits, const Tensor& logits, const Tensor& targets,
                                double grad_scale, int32_t ignore_index = kIgnoreIndex);
// The output layer and cross_entropy_with_grad in one: logits = x @ w^T (x [N, D], w [V, D]; as linear_fwd
// computes them under the current matmul precision), then losses and dlogits [N, V] as
// cross_entropy_with_grad gives them. With bf16 matmuls and a bf16 dlogits the logits are never stored:
// each block of rows becomes losses and gradients while it is still in cache.
int64_t linear_cross_entropy_with_grad(Tensor& losses, Tensor& dlogits, const Tensor& x, const Tensor& w,
                                       const Tensor& targets, double grad_scale, int32_t ignore_index = kIgnoreIndex);

// ---- 2-D convolution as patch embedding (stride = kernel = P, no padding):
// img [B, C, H, W], w [Co, C, P, P], b [Co] or null -> y [B, (H/P)*(W/P), Co] (patches row-major).
void patch_embed_fwd(Tensor& y, const Tensor& img, const Tensor& w, const Tensor* b);
void patch_embed_bwd(Tensor* dimg, Tensor* dw, Tensor* db, const Tensor& dy, const Tensor& img, const Tensor& w);

// ---- row movement for grouped MoE GEMMs.
void gather_rows(Tensor& y, const Tensor& x, const Tensor& rows);  // y[i] = x[rows[i]]
// y[rows[i]] += (weights ? weights[i] : 1) * x[i]   (serial over i per row: deterministic)
void scatter_add_rows(Tensor& y, const Tensor& x, const Tensor& rows, const Tensor* weights);

// Per-row weighting for the MoE combine and its backward: y[i] = w[i] * x[i]; out[i] = a[i] . b[i].
void scale_rows(Tensor& y, const Tensor& x, const Tensor& w);
void scale_rows_bwd(Tensor* dx, Tensor* dw, const Tensor& dy, const Tensor& x, const Tensor& w);
void row_dot(Tensor& out, const Tensor& a, const Tensor& b);
void row_dot_bwd(Tensor* da, Tensor* db, const Tensor& dout, const Tensor& a, const Tensor& b);

// ---- elementwise helpers.
void add_(Tensor& y, const Tensor& x, double alpha = 1.0);  // y += alpha * x
void scale_(Tensor& y, double alpha);                       // y *= alpha
double sum_squares(const Tensor& x);                        // sum of x^2, accumulated in double

// ---- optimizer: AdamW as PyTorch computes it (decoupled decay, bias correction; step is 1-based).
struct AdamWParams {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.0;
  int64_t step = 1;
  // The gradient is used as grad * grad_scale (rounded as scale_ would store it), e.g. the clipping
  // coefficient, so that clipping needs no pass of its own over the gradients. 1: used as is.
  double grad_scale = 1.0;
};
void adamw_step(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, const AdamWParams& p);
// adamw_step on many tensors of one dtype in one pass (PyTorch's fused/foreach AdamW): the same bits as
// one adamw_step each; each tensor has its own step count (p.step is not used).
struct AdamWTensors {
  Tensor* param;
  const Tensor* grad;
  Tensor* m;
  Tensor* v;
  int64_t step;
};
void adamw_step_multi(const std::vector<AdamWTensors>& tensors, const AdamWParams& p);

// Global-norm clipping as torch.nn.utils.clip_grad_norm_: returns the norm before clipping and scales
// every gradient by min(1, max_norm / (norm + 1e-6)).
double clip_grad_norm(const std::vector<Tensor*>& grads, double max_norm);
// The two halves of it, for an optimizer that applies the coefficient itself (AdamWParams::grad_scale):
// the global norm, and min(1, max_norm / (norm + 1e-6)).
double grad_norm(const std::vector<Tensor*>& grads);
double clip_coefficient(double norm, double max_norm);

// Whether the backend of `device` runs bf16 GEMMs natively (AVX512-BF16 on the CPU); otherwise they are
// emulated, slower than fp32.
bool bf16_matmuls_native(Device device = Device::CPU);

}  // namespace tv::ops
