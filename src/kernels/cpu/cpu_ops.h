// CPU kernels: raw pointers, explicit sizes, templated on T = float or double and explicitly
// instantiated for both in the kernel's own file (kernels/cpu/<op>.cpp). Row-major, contiguous.
// Forward kernels overwrite outputs; backward kernels accumulate (+=) into gradients; null gradient
// pointers are skipped. Parallel with OpenMP; GEMMs through BLAS (called outside parallel regions).
#pragma once
#include <cstdint>
#include <functional>

#include "kernels/kernel_table.h"

namespace tv::cpu {

// The shapes and work lists shared with every backend (kernels/kernel_table.h).
using ::tv::AdamWSlice;
using ::tv::AttentionShape;
using ::tv::GemmGroup;
using ::tv::GemmRowsFn;
using ::tv::PatchShape;

// C[M,N] = alpha * op(A) @ op(B) + beta * C, op(A) [M,K], op(B) [K,N]; leading dims as in BLAS row-major.
// For float, matmul_precision() (core/precision.h) picks gemm_f32 or gemm_bf16.
template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc);
void gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
              const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
// Operands rounded to bf16 (nearest even, denormals to zero), fp32 products and sums: AVX512-BF16
// kernels where the CPU has them (gemm_bf16_native()), otherwise gemm_bf16_emulated (round, then gemm_f32).
void gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
               const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
void gemm_bf16_emulated(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                        int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
bool gemm_bf16_native();
// false: take the emulated path even on a CPU with AVX512-BF16 (tests use it to run that path here).
void allow_native_bf16(bool allowed);
// d[j] = bf16_round(e[j] * c) for j < n (the AVX512-BF16 conversion where the CPU has it; the same bits).
void scale_round_bf16(uint16_t* d, const float* e, float c, int64_t n);
// gemm_bf16 with op(A) already in bf16 (bits as bf16_round in kernels/cpu/bf16.h gives them).
void gemm_bf16_a16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t* A,
                   int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
// C = A @ op(B) (A [M, K] not transposed) in blocks of whole rows that are never stored together: each
// block [m0, m0 + mc) is handed to rows(m0, mc, c, ldc) as soon as it is complete, from inside the
// parallel region (so rows must be thread-safe and must not start parallel regions of its own). The
// values are those of gemm_bf16. Used to fuse the output layer with the loss.
void gemm_bf16_rows(bool trans_b, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                    int64_t ldb, const GemmRowsFn& rows);

// Independent GEMMs with the same transposes, alpha and beta (the experts of a MoE layer): one call, one
// parallel region for all of them. Each C equals what gemm() gives for its problem alone.
template <typename T>
void gemm_grouped(bool trans_a, bool trans_b, T alpha, T beta, const GemmGroup<T>* problems, int64_t n);
void gemm_bf16_grouped(bool trans_a, bool trans_b, float alpha, float beta, const GemmGroup<float>* problems,
                       int64_t n);

template <typename T>
void linear_fwd(T* y, const T* x, const T* w, const T* b, int64_t N, int64_t in, int64_t out);
template <typename T>
void linear_bwd(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, int64_t N, int64_t in, int64_t out,
                bool dx_overwrite = false, bool dw_overwrite = false);
// The same with dy in bf16: both products run with bf16 operands (x and w rounded, fp32 sums).
void linear_bwd_bf16dy(float* dx, float* dw, const uint16_t* dy, const float* x, const float* w, int64_t N,
                       int64_t in, int64_t out, bool dx_overwrite = false, bool dw_overwrite = false);
// Inference linears with fp32 x [N, in] and weights w [out, in] stored as bf16 (bits) or q8 blocks, y = x @ w^T
// (+ b), fp32 sums (kernels/cpu/linear_weights.cpp). Grouped: as linear_grouped_fwd.
void linear_fwd_bf16w(float* y, const float* x, const uint16_t* w, const float* b, int64_t N, int64_t in, int64_t out);
void linear_fwd_q8w(float* y, const float* x, const BlockQ8* w, const float* b, int64_t N, int64_t in, int64_t out);
void linear_grouped_fwd_bf16w(float* y, const float* x, const uint16_t* const* w, const int64_t* offsets,
                              int64_t groups, int64_t in, int64_t out);
void linear_grouped_fwd_q8w(float* y, const float* x, const BlockQ8* const* w, const int64_t* offsets, int64_t groups,
                            int64_t in, int64_t out);
// The instruction set of those kernels: the best the CPU has (AVX512-F/BW/VL, else AVX2), unless tests
// select a lower one to run its path here.
enum class WeightKernelIsa { Scalar, Avx2, Avx512 };
WeightKernelIsa weight_kernel_isa();
void set_weight_kernel_isa(WeightKernelIsa isa);
// Several linears fed by the same x [N, in] (q, k and v; gate and up): dx (+)= sum_i dy_i @ w_i and
// dw_i (+)= dy_i^T @ x, w_i [outs[i], in]; the weight gradients of each mode in one grouped call, which
// with bf16 matmuls packs x once for all of them. dw_overwrite: per linear, or null (all accumulate).
template <typename T>
void linear_bwd_shared_input(T* dx, T* const* dw, const T* const* dy, const T* x, const T* const* w,
                             const int64_t* outs, int64_t count, int64_t N, int64_t in, bool dx_overwrite = false,
                             const bool* dw_overwrite = nullptr);

// Grouped linear (MoE experts): rows [offsets[g], offsets[g+1]) of x go through w[g] [out, in]. Backward
// accumulates unless told to overwrite (dx_overwrite; dw_overwrite per group, or null: none); a null dw[g]
// skips that group's weight gradient.
template <typename T>
void linear_grouped_fwd(T* y, const T* x, const T* const* w, const int64_t* offsets, int64_t groups, int64_t in,
                        int64_t out);
template <typename T>
void linear_grouped_bwd(T* dx, T* const* dw, const T* dy, const T* x, const T* const* w, const int64_t* offsets,
                        int64_t groups, int64_t in, int64_t out, bool dx_overwrite = false,
                        const bool* dw_overwrite = nullptr);

template <typename T>
void embedding_fwd(T* y, const int32_t* ids, const T* table, int64_t N, int64_t V, int64_t D);
template <typename T>
void embedding_bwd(T* dtable, const T* dy, const int32_t* ids, int64_t N, int64_t V, int64_t D);

template <typename T>
void rmsnorm_fwd(T* y, T* rstd, const T* x, const T* gamma, int64_t N, int64_t D, double eps);
template <typename T>
void rmsnorm_bwd(T* dx, T* dgamma, const T* dy, const T* x, const T* gamma, const T* rstd, int64_t N, int64_t D,
                 bool dx_overwrite = false);

template <typename T>
void layernorm_fwd(T* y, T* mean, T* rstd, const T* x, const T* w, const T* b, int64_t N, int64_t D, double eps);
template <typename T>
void layernorm_bwd(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, const T* mean, const T* rstd,
                   int64_t N, int64_t D);

// x [B, S, H, Dh]; sign = +1 forward rotation, -1 inverse (the backward). y may equal x.
// accumulate: y += R x instead of y = R x (the backward accumulates).
template <typename T>
void rope(T* y, const T* x, int64_t B, int64_t S, int64_t H, int64_t Dh, int64_t pos_offset, double theta,
          int sign, bool accumulate);

template <typename T>
void softmax_fwd(T* y, const T* x, int64_t N, int64_t D);
template <typename T>
void softmax_bwd(T* dx, const T* dy, const T* y, int64_t N, int64_t D);

template <typename T>
void silu_fwd(T* y, const T* x, int64_t n);
template <typename T>
void silu_bwd(T* dx, const T* dy, const T* x, int64_t n);
template <typename T>
void swiglu_fwd(T* h, const T* gate, const T* up, int64_t n);
template <typename T>
void swiglu_bwd(T* dgate, T* dup, const T* dh, const T* gate, const T* up, int64_t n, bool overwrite = false);
template <typename T>
void gelu_fwd(T* y, const T* x, int64_t n);
template <typename T>
void gelu_bwd(T* dx, const T* dy, const T* x, int64_t n);

template <typename T>
void attention_fwd(T* out, T* lse, const T* q, const T* k, const T* v, const AttentionShape& s, double scale,
                   int64_t q_offset, int64_t chunk_size, bool causal);
// dscale (may be null) receives d(loss)/d(scale), accumulated. overwrite: dq, dk, dv are written, not
// accumulated into (their contents are never read).
template <typename T>
void attention_bwd(T* dq, T* dk, T* dv, double* dscale, const T* dout, const T* q, const T* k, const T* v,
                   const T* out, const T* lse, const AttentionShape& s, double scale, int64_t q_offset,
                   int64_t chunk_size, bool causal, bool overwrite = false);

// See ops::attention_decode_fwd; k[i], v[i] point at position 0 of row i's cache.
template <typename T>
void attention_decode_fwd(T* out, const T* q, const T* const* k, const T* const* v, const int64_t* kv_len, int64_t n,
                          int64_t H, int64_t Hkv, int64_t Dh, double scale, int64_t chunk_size);

template <typename T>
void moe_route_fwd(T* probs, int32_t* idx, T* w, const T* logits, int64_t N, int64_t E, int k);
template <typename T>
void moe_route_bwd(T* dlogits, const T* dw, const T* dprobs, const T* probs, const int32_t* idx, int64_t N,
                   int64_t E, int k);
template <typename T>
double moe_aux_loss_fwd(const T* probs, const int32_t* idx, int64_t N, int64_t E, int k);
template <typename T>
void moe_aux_loss_bwd(T* dprobs, double dloss, const int32_t* idx, int64_t N, int64_t E, int k);

// Loss and gradient in one pass (dlogits overwritten, and may be logits itself).
// ... with the gradient written in bf16 (bf16_round of what the float version writes); logits untouched.
int64_t cross_entropy_with_grad_bf16(float* losses, uint16_t* dlogits, const float* logits, const int32_t* targets,
                                     int64_t N, int64_t V, float grad_scale, int32_t ignore_index);
// Output layer and loss in one pass: logits = x @ w^T (bf16 operands, as gemm_bf16), then what
// cross_entropy_with_grad_bf16 gives for them; the logits are never stored. x [N, D], w [V, D].
int64_t linear_cross_entropy_with_grad_bf16(float* losses, uint16_t* dlogits, const float* x, const float* w,
                                            const int32_t* targets, int64_t N, int64_t D, int64_t V, float grad_scale,
                                            int32_t ignore_index);
template <typename T>
int64_t cross_entropy_with_grad(T* losses, T* dlogits, const T* logits, const int32_t* targets, int64_t N, int64_t V,
                                T grad_scale, int32_t ignore_index);
template <typename T>
int64_t cross_entropy_fwd(T* losses, T* lse, const T* logits, const int32_t* targets, int64_t N, int64_t V,
                          int32_t ignore_index);
template <typename T>
void cross_entropy_bwd(T* dlogits, const T* dlosses, const T* logits, const int32_t* targets, const T* lse,
                       int64_t N, int64_t V, int32_t ignore_index);

template <typename T>
void patch_embed_fwd(T* y, const T* img, const T* w, const T* b, const PatchShape& s);
template <typename T>
void patch_embed_bwd(T* dimg, T* dw, T* db, const T* dy, const T* img, const T* w, const PatchShape& s);

template <typename T>
void gather_rows(T* y, const T* x, const int32_t* rows, int64_t n_rows, int64_t D);
template <typename T>
void scatter_add_rows(T* y, const T* x, const int32_t* rows, const T* weights, int64_t n_rows, int64_t n_out,
                      int64_t D);

template <typename T>
void scale_rows(T* y, const T* x, const T* w, int64_t n_rows, int64_t D);
template <typename T>
void scale_rows_bwd(T* dx, T* dw, const T* dy, const T* x, const T* w, int64_t n_rows, int64_t D);
template <typename T>
void row_dot(T* out, const T* a, const T* b, int64_t n_rows, int64_t D);
template <typename T>
void row_dot_bwd(T* da, T* db, const T* dout, const T* a, const T* b, int64_t n_rows, int64_t D);

template <typename T>
void add(T* y, const T* x, double alpha, int64_t n);
template <typename T>
void scale(T* y, double alpha, int64_t n);
template <typename T>
double sum_squares(const T* x, int64_t n);

template <typename T>
void adamw_step(T* param, const T* grad, T* m, T* v, int64_t n, double lr, double beta1, double beta2, double eps,
                double weight_decay, int64_t step, double grad_scale = 1.0);
// adamw_step on many tensors, each with its own step count, in one parallel region: the same bits.
template <typename T>
void adamw_multi(const AdamWSlice<T>* tensors, int64_t count, double lr, double beta1, double beta2, double eps,
                 double weight_decay, double grad_scale = 1.0);
// sum_squares of many tensors in one parallel region: out[t] gets the same bits as sum_squares alone.
template <typename T>
void sum_squares_multi(const T* const* xs, const int64_t* ns, int64_t count, double* out);

}  // namespace tv::cpu
