#include "core/ops.h"
#include "core/profile.h"
#include "ops/dispatch.h"
#include "ops/moe_common.h"

namespace tv::ops {

static void check_aux(const char* op, const Tensor& probs, const Tensor& idx) {
  TV_CHECK(probs.ndim() == 2, op, ": probs [N, E] expected, got ", probs.describe());
  check_contiguous(probs, op, "probs");
  check_expert_ids(op, idx, probs.size(0), probs.size(1));
}

double moe_aux_loss_fwd(const Tensor& probs, const Tensor& idx) {
  TV_PROFILE("moe_aux_loss_fwd");
  const char* op = "moe_aux_loss_fwd";
  check_aux(op, probs, idx);
  const Device dev = common_device(op, &probs, &idx);
  double loss = 0;
  TV_DISPATCH(dev, "moe_aux_loss", probs.dtype(), op,
                    loss = TV_KERNEL(KT, moe_aux_loss_fwd)(probs.data<T>(), idx.data<int32_t>(), probs.size(0), probs.size(1),
                                                    int(idx.size(1))));
  return loss;
}

void moe_aux_loss_bwd(Tensor& dprobs, double dloss, const Tensor& probs, const Tensor& idx) {
  TV_PROFILE("moe_aux_loss_bwd");
  const char* op = "moe_aux_loss_bwd";
  check_aux(op, probs, idx);
  check_shape(dprobs, probs.shape(), op, "dprobs");
  check_same_dtype(probs, dprobs, op);
  check_contiguous(dprobs, op, "dprobs");
  const Device dev = common_device(op, &dprobs, &probs, &idx);
  TV_DISPATCH(dev, "moe_aux_loss", probs.dtype(), op,
                    TV_KERNEL(KT, moe_aux_loss_bwd)(dprobs.data<T>(), dloss, idx.data<int32_t>(), probs.size(0),
                                             probs.size(1), int(idx.size(1))));
}

}  // namespace tv::ops
