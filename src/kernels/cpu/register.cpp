// The CPU backend's registration: every kernel of this folder in the tables of kernels/kernel_table.h,
// and the ops it runs (all of core/op_list.h, in f32 and f64; the inference ops in f32).
#include "core/op_list.h"
#include "kernels/cpu/cpu_ops.h"

namespace tv::cpu {
namespace {

template <typename T>
KernelTable<T> table() {
  KernelTable<T> k;
  k.gemm = &gemm<T>;
  k.gemm_grouped = &gemm_grouped<T>;
  k.linear_fwd = &linear_fwd<T>;
  k.linear_bwd = &linear_bwd<T>;
  k.linear_bwd_shared_input = &linear_bwd_shared_input<T>;
  k.linear_grouped_fwd = &linear_grouped_fwd<T>;
  k.linear_grouped_bwd = &linear_grouped_bwd<T>;
  k.embedding_fwd = &embedding_fwd<T>;
  k.embedding_bwd = &embedding_bwd<T>;
  k.rmsnorm_fwd = &rmsnorm_fwd<T>;
  k.rmsnorm_bwd = &rmsnorm_bwd<T>;
  k.layernorm_fwd = &layernorm_fwd<T>;
  k.layernorm_bwd = &layernorm_bwd<T>;
  k.rope = &rope<T>;
  k.softmax_fwd = &softmax_fwd<T>;
  k.softmax_bwd = &softmax_bwd<T>;
  k.silu_fwd = &silu_fwd<T>;
  k.silu_bwd = &silu_bwd<T>;
  k.swiglu_fwd = &swiglu_fwd<T>;
  k.swiglu_bwd = &swiglu_bwd<T>;
  k.gelu_fwd = &gelu_fwd<T>;
  k.gelu_bwd = &gelu_bwd<T>;
  k.attention_fwd = &attention_fwd<T>;
  k.attention_bwd = &attention_bwd<T>;
  k.attention_decode_fwd = &attention_decode_fwd<T>;
  k.moe_route_fwd = &moe_route_fwd<T>;
  k.moe_route_bwd = &moe_route_bwd<T>;
  k.moe_aux_loss_fwd = &moe_aux_loss_fwd<T>;
  k.moe_aux_loss_bwd = &moe_aux_loss_bwd<T>;
  k.cross_entropy_with_grad = &cross_entropy_with_grad<T>;
  k.cross_entropy_fwd = &cross_entropy_fwd<T>;
  k.cross_entropy_bwd = &cross_entropy_bwd<T>;
  k.patch_embed_fwd = &patch_embed_fwd<T>;
  k.patch_embed_bwd = &patch_embed_bwd<T>;
  k.gather_rows = &gather_rows<T>;
  k.scatter_add_rows = &scatter_add_rows<T>;
  k.scale_rows = &scale_rows<T>;
  k.scale_rows_bwd = &scale_rows_bwd<T>;
  k.row_dot = &row_dot<T>;
  k.row_dot_bwd = &row_dot_bwd<T>;
  k.add = &add<T>;
  k.scale = &scale<T>;
  k.sum_squares = &sum_squares<T>;
  k.sum_squares_multi = &sum_squares_multi<T>;
  k.adamw_step = &adamw_step<T>;
  k.adamw_multi = &adamw_multi<T>;
  return k;
}

KernelBackend make_backend() {
  KernelBackend b;
  b.name = "cpu";
  b.device = Device::CPU;
  b.f32 = table<float>();
  b.f64 = table<double>();
  b.bf16.gemm = &gemm_bf16;
  b.bf16.gemm_grouped = &gemm_bf16_grouped;
  b.bf16.linear_bwd_bf16dy = &linear_bwd_bf16dy;
  b.bf16.cross_entropy_with_grad = &cross_entropy_with_grad_bf16;
  b.bf16.linear_cross_entropy_with_grad = &linear_cross_entropy_with_grad_bf16;
  b.bf16_native = &gemm_bf16_native;
  b.weights.linear_fwd_bf16 = &linear_fwd_bf16w;
  b.weights.linear_fwd_q8 = &linear_fwd_q8w;
  b.weights.linear_grouped_fwd_bf16 = &linear_grouped_fwd_bf16w;
  b.weights.linear_grouped_fwd_q8 = &linear_grouped_fwd_q8w;
#define TV_CPU_RUNS(op) b.ops.push_back({#op, true, true});
  TV_DIFFERENTIABLE_OPS(TV_CPU_RUNS)
  TV_UPDATE_OPS(TV_CPU_RUNS)
#undef TV_CPU_RUNS
#define TV_CPU_RUNS_F32(op) b.ops.push_back({#op, true, false});
  TV_INFERENCE_OPS(TV_CPU_RUNS_F32)
#undef TV_CPU_RUNS_F32
  return b;
}

}  // namespace

const KernelBackend* kernel_backend() {
  static const KernelBackend b = make_backend();
  return &b;
}

}  // namespace tv::cpu
