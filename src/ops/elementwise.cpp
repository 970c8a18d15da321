#include "core/ops.h"
#include "core/profile.h"
#include "ops/arg_checks.h"
#include "ops/dispatch.h"

namespace tv::ops {

void add_(Tensor& y, const Tensor& x, double alpha) {
  TV_PROFILE("add_");
  const char* op = "add_";
  check_contiguous(y, op, "y");
  check_like(x, y, op, "x");
  const Device dev = common_device(op, &y, &x);
  TV_DISPATCH(dev, "add", y.dtype(), op, TV_KERNEL(KT, add)(y.data<T>(), x.data<T>(), alpha, y.numel()));
}

void scale_(Tensor& y, double alpha) {
  TV_PROFILE("scale_");
  const char* op = "scale_";
  check_contiguous(y, op, "y");
  const Device dev = common_device(op, &y);
  TV_DISPATCH(dev, "scale", y.dtype(), op, TV_KERNEL(KT, scale)(y.data<T>(), alpha, y.numel()));
}

double sum_squares(const Tensor& x) {
  TV_PROFILE("sum_squares");
  const char* op = "sum_squares";
  check_contiguous(x, op, "x");
  const Device dev = common_device(op, &x);
  double s = 0;
  TV_DISPATCH(dev, "sum_squares", x.dtype(), op, s = TV_KERNEL(KT, sum_squares)(x.data<T>(), x.numel()));
  return s;
}

}  // namespace tv::ops
