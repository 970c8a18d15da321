// The contract between the op layer and a backend's kernels: one table of kernel pointers per dtype,
// the bf16 matmul kernels, and a declaration of which ops and dtypes the backend runs. The ops check
// their arguments and dispatch through the table of their tensors' device (ops/dispatch.h); a backend is
// a folder of kernels that fills one KernelBackend and is named once in src/ops/backends.cpp.
//
// Kernel conventions: raw device pointers, explicit sizes, row-major and contiguous; forward kernels
// overwrite outputs, backward kernels accumulate (+=) unless told to overwrite; null gradient pointers are
// skipped. Kernels check nothing: the op layer has already.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace tv {

struct AttentionShape {
  int64_t B, Sq, Sk, H, Hkv, Dh;
};
struct PatchShape {
  int64_t B, C, H, W, Co, P;
};
// One of several independent GEMMs with the same transposes, alpha and beta (the experts of a MoE layer).
template <typename T>
struct GemmGroup {
  int64_t M, N, K;
  const T* A;
  int64_t lda;
  const T* B;
  int64_t ldb;
  T* C;
  int64_t ldc;
};
// One tensor of a multi-tensor AdamW update, with its own step count.
template <typename T>
struct AdamWSlice {
  T* param;
  const T* grad;
  T* m;
  T* v;
  int64_t n, step;
};
// Receives each finished block of rows [m0, m0 + mc) of a product that is never stored whole.
using GemmRowsFn = std::function<void(int64_t m0, int64_t mc, float* c, int64_t ldc)>;

// The kernels of one dtype. A null entry: this backend has no such kernel for T.
template <typename T>
struct KernelTable {
  void (*gemm)(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
               const T* B, int64_t ldb, T beta, T* C, int64_t ldc) = nullptr;
  void (*gemm_grouped)(bool trans_a, bool trans_b, T alpha, T beta, const GemmGroup<T>* problems, int64_t n) = nullptr;
  void (*linear_fwd)(T* y, const T* x, const T* w, const T* b, int64_t N, int64_t in, int64_t out) = nullptr;
  void (*linear_bwd)(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, int64_t N, int64_t in, int64_t out,
                     bool dx_overwrite, bool dw_overwrite) = nullptr;
  void (*linear_bwd_shared_input)(T* dx, T* const* dw, const T* const* dy, const T* x, const T* const* w,
                                  const int64_t* outs, int64_t count, int64_t N, int64_t in, bool dx_overwrite,
                                  const bool* dw_overwrite) = nullptr;
  void (*linear_grouped_fwd)(T* y, const T* x, const T* const* w, const int64_t* offsets, int64_t groups, int64_t in,
                             int64_t out) = nullptr;
  void (*linear_grouped_bwd)(T* dx, T* const* dw, const T* dy, const T* x, const T* const* w, const int64_t* offsets,
                             int64_t groups, int64_t in, int64_t out, bool dx_overwrite,
                             const bool* dw_overwrite) = nullptr;
  void (*embedding_fwd)(T* y, const int32_t* ids, const T* table, int64_t N, int64_t V, int64_t D) = nullptr;
  void (*embedding_bwd)(T* dtable, const T* dy, const int32_t* ids, int64_t N, int64_t V, int64_t D) = nullptr;
  void (*rmsnorm_fwd)(T* y, T* rstd, const T* x, const T* gamma, int64_t N, int64_t D, double eps) = nullptr;
  void (*rmsnorm_bwd)(T* dx, T* dgamma, const T* dy, const T* x, const T* gamma, const T* rstd, int64_t N, int64_t D,
                      bool dx_overwrite) = nullptr;
  void (*layernorm_fwd)(T* y, T* mean, T* rstd, const T* x, const T* w, const T* b, int64_t N, int64_t D,
                        double eps) = nullptr;
  void (*layernorm_bwd)(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, const T* mean, const T* rstd,
                        int64_t N, int64_t D) = nullptr;
  void (*rope)(T* y, const T* x, int64_t B, int64_t S, int64_t H, int64_t Dh, int64_t pos_offset, double theta,
               int sign, bool accumulate) = nullptr;
  void (*softmax_fwd)(T* y, const T* x, int64_t N, int64_t D) = nullptr;
  void (*softmax_bwd)(T* dx, const T* dy, const T* y, int64_t N, int64_t D) = nullptr;
  void (*silu_fwd)(T* y, const T* x, int64_t n) = nullptr;
  void (*silu_bwd)(T* dx, const T* dy, const T* x, int64_t n) = nullptr;
  void (*swiglu_fwd)(T* h, const T* gate, const T* up, int64_t n) = nullptr;
  void (*swiglu_bwd)(T* dgate, T* dup, const T* dh, const T* gate, const T* up, int64_t n, bool overwrite) = nullptr;
  void (*gelu_fwd)(T* y, const T* x, int64_t n) = nullptr;
  void (*gelu_bwd)(T* dx, const T* dy, const T* x, int64_t n) = nullptr;
  // Fused, tiled attention (never stores Sq x Sk scores).
  void (*attention_fwd)(T* out, T* lse, const T* q, const T* k, const T* v, const AttentionShape& s, double scale,
                        int64_t q_offset, int64_t chunk_size, bool causal) = nullptr;
  void (*attention_bwd)(T* dq, T* dk, T* dv, double* dscale, const T* dout, const T* q, const T* k, const T* v,
                        const T* out, const T* lse, const AttentionShape& s, double scale, int64_t q_offset,
                        int64_t chunk_size, bool causal, bool overwrite) = nullptr;
  // Decode: n query rows, row i against its own cache k[i], v[i] (rows of Hkv * Dh), kv_len[i] keys.
  void (*attention_decode_fwd)(T* out, const T* q, const T* const* k, const T* const* v, const int64_t* kv_len,
                               int64_t n, int64_t H, int64_t Hkv, int64_t Dh, double scale,
                               int64_t chunk_size) = nullptr;
  void (*moe_route_fwd)(T* probs, int32_t* idx, T* w, const T* logits, int64_t N, int64_t E, int k) = nullptr;
  void (*moe_route_bwd)(T* dlogits, const T* dw, const T* dprobs, const T* probs, const int32_t* idx, int64_t N,
                        int64_t E, int k) = nullptr;
  double (*moe_aux_loss_fwd)(const T* probs, const int32_t* idx, int64_t N, int64_t E, int k) = nullptr;
  void (*moe_aux_loss_bwd)(T* dprobs, double dloss, const int32_t* idx, int64_t N, int64_t E, int k) = nullptr;
  int64_t (*cross_entropy_with_grad)(T* losses, T* dlogits, const T* logits, const int32_t* targets, int64_t N,
                                     int64_t V, T grad_scale, int32_t ignore_index) = nullptr;
  int64_t (*cross_entropy_fwd)(T* losses, T* lse, const T* logits, const int32_t* targets, int64_t N, int64_t V,
                               int32_t ignore_index) = nullptr;
  void (*cross_entropy_bwd)(T* dlogits, const T* dlosses, const T* logits, const int32_t* targets, const T* lse,
                            int64_t N, int64_t V, int32_t ignore_index) = nullptr;
  void (*patch_embed_fwd)(T* y, const T* img, const T* w, const T* b, const PatchShape& s) = nullptr;
  void (*patch_embed_bwd)(T* dimg, T* dw, T* db, const T* dy, const T* img, const T* w, const PatchShape& s) = nullptr;
  void (*gather_rows)(T* y, const T* x, const int32_t* rows, int64_t n_rows, int64_t D) = nullptr;
  void (*scatter_add_rows)(T* y, const T* x, const int32_t* rows, const T* weights, int64_t n_rows, int64_t n_out,
                           int64_t D) = nullptr;
  void (*scale_rows)(T* y, const T* x, const T* w, int64_t n_rows, int64_t D) = nullptr;
  void (*scale_rows_bwd)(T* dx, T* dw, const T* dy, const T* x, const T* w, int64_t n_rows, int64_t D) = nullptr;
  void (*row_dot)(T* out, const T* a, const T* b, int64_t n_rows, int64_t D) = nullptr;
  void (*row_dot_bwd)(T* da, T* db, const T* dout, const T* a, const T* b, int64_t n_rows, int64_t D) = nullptr;
  void (*add)(T* y, const T* x, double alpha, int64_t n) = nullptr;
  void (*scale)(T* y, double alpha, int64_t n) = nullptr;
  double (*sum_squares)(const T* x, int64_t n) = nullptr;
  void (*sum_squares_multi)(const T* const* xs, const int64_t* ns, int64_t count, double* out) = nullptr;
  void (*adamw_step)(T* param, const T* grad, T* m, T* v, int64_t n, double lr, double beta1, double beta2,
                     double eps, double weight_decay, int64_t step, double grad_scale) = nullptr;
  void (*adamw_multi)(const AdamWSlice<T>* tensors, int64_t count, double lr, double beta1, double beta2, double eps,
                      double weight_decay, double grad_scale) = nullptr;
};

// Kernels with bf16 operands or outputs (fp32 tensors, bf16 products; dlogits and dy as raw bf16 bits).
// All null: the backend has no bf16 matmuls.
struct Bf16Kernels {
  void (*gemm)(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
               int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) = nullptr;
  void (*gemm_grouped)(bool trans_a, bool trans_b, float alpha, float beta, const GemmGroup<float>* problems,
                       int64_t n) = nullptr;
  void (*linear_bwd_bf16dy)(float* dx, float* dw, const uint16_t* dy, const float* x, const float* w, int64_t N,
                            int64_t in, int64_t out, bool dx_overwrite, bool dw_overwrite) = nullptr;
  int64_t (*cross_entropy_with_grad)(float* losses, uint16_t* dlogits, const float* logits, const int32_t* targets,
                                     int64_t N, int64_t V, float grad_scale, int32_t ignore_index) = nullptr;
  int64_t (*linear_cross_entropy_with_grad)(float* losses, uint16_t* dlogits, const float* x, const float* w,
                                            const int32_t* targets, int64_t N, int64_t D, int64_t V,
                                            float grad_scale, int32_t ignore_index) = nullptr;
};

// Inference linears whose weights are stored narrower than the fp32 activations (`--weights bf16|q8`):
// y [N, out] = x [N, in] @ w^T (+ b), w [out, in] as bf16 bits or q8 blocks (core/dtype.h BlockQ8), fp32
// sums. Forward only. All null: the backend has none.
struct WeightFormatKernels {
  void (*linear_fwd_bf16)(float* y, const float* x, const uint16_t* w, const float* b, int64_t N, int64_t in,
                          int64_t out) = nullptr;
  void (*linear_fwd_q8)(float* y, const float* x, const BlockQ8* w, const float* b, int64_t N, int64_t in,
                        int64_t out) = nullptr;
  void (*linear_grouped_fwd_bf16)(float* y, const float* x, const uint16_t* const* w, const int64_t* offsets,
                                  int64_t groups, int64_t in, int64_t out) = nullptr;
  void (*linear_grouped_fwd_q8)(float* y, const float* x, const BlockQ8* const* w, const int64_t* offsets,
                                int64_t groups, int64_t in, int64_t out) = nullptr;
};

// Which dtypes one op (a name of core/op_list.h) runs in on a backend; both false: explicitly unsupported.
struct OpSupport {
  std::string op;
  bool f32 = false, f64 = false;
};

struct KernelBackend {
  std::string name;  // "cpu", "cuda"; stand-ins in tests get their own names
  Device device = Device::CPU;
  KernelTable<float> f32;
  KernelTable<double> f64;
  Bf16Kernels bf16;
  WeightFormatKernels weights;
  // Whether bf16 matmuls run at full speed here (AVX512-BF16, tensor cores) rather than emulated.
  bool (*bf16_native)() = nullptr;
  // One entry for every op of core/op_list.h (tests/core/test_op_registry.cpp demands it).
  std::vector<OpSupport> ops;
};

}  // namespace tv
