#include "core/ops.h"
#include "core/profile.h"
#include "ops/arg_checks.h"
#include "ops/dispatch.h"

namespace tv::ops {

// x [..., D] (rows = every dim but the last), w and b [D], mean and rstd one per row.
static void check_layernorm(const char* op, const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd) {
  if (x.ndim() < 1) fail(op, ": x should be [N, D], got ", x.describe());
  check_contiguous(x, op, "x");
  check_arg(w, op, "w", {x.size(-1)}, x.dtype());
  check_row_stat(mean, x, op, "mean");
  check_row_stat(rstd, x, op, "rstd");
}

void layernorm_fwd(Tensor& y, Tensor& mean, Tensor& rstd, const Tensor& x, const Tensor& w, const Tensor& b,
                   double eps) {
  TV_PROFILE("layernorm_fwd");
  const char* op = "layernorm_fwd";
  check_layernorm(op, x, w, mean, rstd);
  check_like(b, w, op, "b");
  check_like(y, x, op, "y");
  const Device dev = common_device(op, &y, &mean, &rstd, &x, &w, &b);
  TV_DISPATCH(dev, "layernorm", x.dtype(), op,
                    TV_KERNEL(KT, layernorm_fwd)(y.data<T>(), mean.data<T>(), rstd.data<T>(), x.data<T>(), w.data<T>(),
                                          b.data<T>(), leading_rows(x), x.size(-1), eps));
}

void layernorm_bwd(Tensor* dx, Tensor* dw, Tensor* db, const Tensor& dy, const Tensor& x, const Tensor& w,
                   const Tensor& mean, const Tensor& rstd) {
  TV_PROFILE("layernorm_bwd");
  const char* op = "layernorm_bwd";
  check_layernorm(op, x, w, mean, rstd);
  check_like(dy, x, op, "dy");
  if (dx) check_like(*dx, x, op, "dx");
  if (dw) check_like(*dw, w, op, "dw");
  if (db) check_like(*db, w, op, "db");
  const Device dev = common_device(op, &dy, &x, &w, &mean, &rstd, dx, dw, db);
  TV_DISPATCH(dev, "layernorm", 
      x.dtype(), op,
      TV_KERNEL(KT, layernorm_bwd)(ptr_or_null<T>(dx), ptr_or_null<T>(dw), ptr_or_null<T>(db), dy.data<T>(), x.data<T>(),
                            w.data<T>(), mean.data<T>(), rstd.data<T>(), leading_rows(x), x.size(-1)));
}

}  // namespace tv::ops
