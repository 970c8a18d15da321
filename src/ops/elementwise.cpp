#include "core/ops.h"
#include "core/profile.h"
#include "kernels/cpu/cpu_ops.h"
#include "ops/arg_checks.h"
#include "ops/dispatch.h"

namespace tv::ops {

void add_(Tensor& y, const Tensor& x, double alpha) {
  TV_PROFILE("add_");
  const char* op = "add_";
  check_contiguous(y, op, "y");
  check_like(x, y, op, "x");
  require_cpu(common_device(op, &y, &x), op);
  TV_DISPATCH_FLOAT(y.dtype(), op, cpu::add<T>(y.data<T>(), x.data<T>(), alpha, y.numel()));
}

void scale_(Tensor& y, double alpha) {
  TV_PROFILE("scale_");
  const char* op = "scale_";
  check_contiguous(y, op, "y");
  require_cpu(common_device(op, &y), op);
  TV_DISPATCH_FLOAT(y.dtype(), op, cpu::scale<T>(y.data<T>(), alpha, y.numel()));
}

double sum_squares(const Tensor& x) {
  TV_PROFILE("sum_squares");
  const char* op = "sum_squares";
  check_contiguous(x, op, "x");
  require_cpu(common_device(op, &x), op);
  double s = 0;
  TV_DISPATCH_FLOAT(x.dtype(), op, s = cpu::sum_squares<T>(x.data<T>(), x.numel()));
  return s;
}

}  // namespace tv::ops
