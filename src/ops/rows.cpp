#include "core/ops.h"
#include "core/profile.h"
#include "ops/arg_checks.h"
#include "ops/dispatch.h"

namespace tv::ops {

void gather_rows(Tensor& y, const Tensor& x, const Tensor& rows) {
  TV_PROFILE("gather_rows");
  const char* op = "gather_rows";
  if (x.ndim() != 2) fail(op, ": x should be [n_src, D], got ", x.describe());
  check_contiguous(x, op, "x");
  if (rows.ndim() != 1) fail(op, ": rows should be [n], got ", rows.describe());
  check_arg(rows, op, "rows", rows.shape(), DType::I32);
  check_arg(y, op, "y", {rows.size(0), x.size(1)}, x.dtype());
  const Device dev = common_device(op, &y, &x, &rows);
  check_index_range(rows, x.size(0), op, "rows", "x");
  TV_DISPATCH(dev, "gather_rows", x.dtype(), op,
                    TV_KERNEL(KT, gather_rows)(y.data<T>(), x.data<T>(), rows.data<int32_t>(), rows.size(0), x.size(1)));
}

void scatter_add_rows(Tensor& y, const Tensor& x, const Tensor& rows, const Tensor* weights) {
  TV_PROFILE("scatter_add_rows");
  const char* op = "scatter_add_rows";
  if (y.ndim() != 2) fail(op, ": y should be [n_out, D], got ", y.describe());
  check_contiguous(y, op, "y");
  if (rows.ndim() != 1) fail(op, ": rows should be [n], got ", rows.describe());
  check_arg(rows, op, "rows", rows.shape(), DType::I32);
  check_arg(x, op, "x", {rows.size(0), y.size(1)}, y.dtype());
  if (weights && weights->defined()) check_arg(*weights, op, "weights", {rows.size(0)}, y.dtype());
  const Device dev = common_device(op, &y, &x, &rows, weights);
  check_index_range(rows, y.size(0), op, "rows", "y");
  TV_DISPATCH(dev, "scatter_add_rows", y.dtype(), op,
                    TV_KERNEL(KT, scatter_add_rows)(y.data<T>(), x.data<T>(), rows.data<int32_t>(), ptr_or_null<T>(weights),
                                             rows.size(0), y.size(0), y.size(1)));
}

}  // namespace tv::ops
