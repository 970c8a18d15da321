#include "core/ops.h"
#include "core/profile.h"
#include "ops/dispatch.h"
#include "ops/moe_common.h"

namespace tv::ops {

void moe_route_fwd(Tensor& probs, Tensor& idx, Tensor& w, const Tensor& logits, int k) {
  TV_PROFILE("moe_route_fwd");
  const char* op = "moe_route_fwd";
  TV_CHECK(logits.ndim() == 2, op, ": logits [N, E] expected, got ", logits.describe());
  const int64_t N = logits.size(0), E = logits.size(1);
  TV_CHECK(k >= 1 && k <= E, op, ": top-k must be in [1, ", E, "], got ", k);
  check_shape(probs, {N, E}, op, "probs");
  check_shape(idx, {N, k}, op, "idx");
  check_shape(w, {N, k}, op, "w");
  TV_CHECK(idx.dtype() == DType::I32, op, ": idx must be i32, got ", idx.describe());
  check_same_dtype(logits, probs, op);
  check_same_dtype(logits, w, op);
  const Tensor* args[] = {&logits, &probs, &idx, &w};
  for (const Tensor* t : args) check_contiguous(*t, op, "argument");
  const Device dev = common_device(op, &probs, &idx, &w, &logits);
  TV_DISPATCH(dev, "moe_route", logits.dtype(), op,
                    TV_KERNEL(KT, moe_route_fwd)(probs.data<T>(), idx.data<int32_t>(), w.data<T>(), logits.data<T>(), N, E,
                                          k));
}

void moe_route_bwd(Tensor& dlogits, const Tensor& dw, const Tensor* dprobs, const Tensor& probs, const Tensor& idx) {
  TV_PROFILE("moe_route_bwd");
  const char* op = "moe_route_bwd";
  TV_CHECK(probs.ndim() == 2, op, ": probs [N, E] expected, got ", probs.describe());
  const int64_t N = probs.size(0), E = probs.size(1);
  check_expert_ids(op, idx, N, E);
  const int64_t k = idx.size(1);
  check_shape(dlogits, {N, E}, op, "dlogits");
  check_shape(dw, {N, k}, op, "dw");
  check_same_dtype(probs, dlogits, op);
  check_same_dtype(probs, dw, op);
  const Tensor* args[] = {&dlogits, &dw, &probs};
  for (const Tensor* t : args) check_contiguous(*t, op, "argument");
  if (dprobs && dprobs->defined()) {
    check_shape(*dprobs, {N, E}, op, "dprobs");
    check_same_dtype(probs, *dprobs, op);
    check_contiguous(*dprobs, op, "dprobs");
  }
  const Device dev = common_device(op, &dlogits, &dw, dprobs, &probs, &idx);
  TV_DISPATCH(dev, "moe_route", probs.dtype(), op,
                    TV_KERNEL(KT, moe_route_bwd)(dlogits.data<T>(), dw.data<T>(), ptr_or_null<T>(dprobs), probs.data<T>(),
                                          idx.data<int32_t>(), N, E, int(k)));
}

}  // namespace tv::ops
