// The registry of ops. Every op here must have tests registered with TV_OP_TEST (tests/harness):
// differentiable ops a `forward` check against a naive reference and a `gradcheck` against finite
// differences in double precision; update ops (no gradient) a `forward` check. tests/core/test_op_registry.cpp
// fails when an op lacks them, so an op cannot be added untested.
#pragma once

#define TV_DIFFERENTIABLE_OPS(X) \
  X(matmul)                      \
  X(linear)                      \
  X(linear_grouped)              \
  X(embedding)                   \
  X(rmsnorm)                     \
  X(layernorm)                   \
  X(rope)                        \
  X(softmax)                     \
  X(silu)                        \
  X(swiglu)                      \
  X(gelu)                        \
  X(attention)                   \
  X(moe_route)                   \
  X(moe_aux_loss)                \
  X(cross_entropy)               \
  X(patch_embed)                 \
  X(gather_rows)                 \
  X(scatter_add_rows)            \
  X(scale_rows)                  \
  X(row_dot)

#define TV_UPDATE_OPS(X)       \
  X(add)                       \
  X(cross_entropy_with_grad)   \
  X(attention_decode)          \
  X(linear_cross_entropy_with_grad) \
  X(scale)                     \
  X(sum_squares)               \
  X(adamw)                     \
  X(adamw_step_multi)          \
  X(clip_grad_norm)

// Forward-only ops of inference (activations f32, weights stored narrower: `--weights bf16|q8`); each
// needs a `forward` test against the f32 op on the widened weights. One name per weight format covers
// linear_fwd and linear_grouped_fwd with such weights.
#define TV_INFERENCE_OPS(X) \
  X(linear_bf16_weights)    \
  X(linear_q8_weights)
