#include "core/ops.h"
#include "core/profile.h"
#include "ops/arg_checks.h"
#include "ops/dispatch.h"

namespace tv::ops {

// x [..., D] (rows = every dim but the last), gamma [D], rstd one per row.
static void check_rmsnorm(const char* op, const Tensor& x, const Tensor& gamma, const Tensor& rstd) {
  if (x.ndim() < 1) fail(op, ": x should be [N, D], got ", x.describe());
  check_contiguous(x, op, "x");
  check_arg(gamma, op, "gamma", {x.size(-1)}, x.dtype());
  check_row_stat(rstd, x, op, "rstd");
}

void rmsnorm_fwd(Tensor& y, Tensor& rstd, const Tensor& x, const Tensor& gamma, double eps) {
  TV_PROFILE("rmsnorm_fwd");
  const char* op = "rmsnorm_fwd";
  check_rmsnorm(op, x, gamma, rstd);
  check_like(y, x, op, "y");
  const Device dev = common_device(op, &y, &rstd, &x, &gamma);
  TV_DISPATCH(dev, "rmsnorm", 
      x.dtype(), op,
      TV_KERNEL(KT, rmsnorm_fwd)(y.data<T>(), rstd.data<T>(), x.data<T>(), gamma.data<T>(), leading_rows(x), x.size(-1), eps));
}

void rmsnorm_bwd(Tensor* dx, Tensor* dgamma, const Tensor& dy, const Tensor& x, const Tensor& gamma,
                 const Tensor& rstd, GradMode dx_mode) {
  TV_PROFILE("rmsnorm_bwd");
  const char* op = "rmsnorm_bwd";
  check_rmsnorm(op, x, gamma, rstd);
  check_like(dy, x, op, "dy");
  if (dx) check_like(*dx, x, op, "dx");
  if (dgamma) check_like(*dgamma, gamma, op, "dgamma");
  const Device dev = common_device(op, &dy, &x, &gamma, &rstd, dx, dgamma);
  TV_DISPATCH(dev, "rmsnorm", x.dtype(), op,
                    TV_KERNEL(KT, rmsnorm_bwd)(ptr_or_null<T>(dx), ptr_or_null<T>(dgamma), dy.data<T>(), x.data<T>(),
                                        gamma.data<T>(), rstd.data<T>(), leading_rows(x), x.size(-1),
                                        dx_mode == GradMode::Overwrite));
}

}  // namespace tv::ops
