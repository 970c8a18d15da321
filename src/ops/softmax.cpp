#include "core/ops.h"
#include "core/profile.h"
#include "ops/arg_checks.h"
#include "ops/dispatch.h"

namespace tv::ops {

void softmax_fwd(Tensor& y, const Tensor& x) {
  TV_PROFILE("softmax_fwd");
  const char* op = "softmax_fwd";
  if (x.ndim() < 1) fail(op, ": x should have at least one dim, got ", x.describe());
  check_contiguous(x, op, "x");
  check_like(y, x, op, "y");
  const Device dev = common_device(op, &y, &x);
  TV_DISPATCH(dev, "softmax", x.dtype(), op, TV_KERNEL(KT, softmax_fwd)(y.data<T>(), x.data<T>(), leading_rows(x), x.size(-1)));
}

void softmax_bwd(Tensor& dx, const Tensor& dy, const Tensor& y) {
  TV_PROFILE("softmax_bwd");
  const char* op = "softmax_bwd";
  if (y.ndim() < 1) fail(op, ": y should have at least one dim, got ", y.describe());
  check_contiguous(y, op, "y");
  check_like(dy, y, op, "dy");
  check_like(dx, y, op, "dx");
  const Device dev = common_device(op, &dx, &dy, &y);
  TV_DISPATCH(dev, "softmax", y.dtype(), op,
                    TV_KERNEL(KT, softmax_bwd)(dx.data<T>(), dy.data<T>(), y.data<T>(), leading_rows(y), y.size(-1)));
}

}  // namespace tv::ops
