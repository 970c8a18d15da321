#include "core/ops.h"
#include "core/profile.h"
#include "ops/dispatch.h"

namespace tv::ops {

static void check_rows(const char* op, const Tensor& x, const Tensor& w) {
  TV_CHECK(x.ndim() == 2, op, ": x must be [n, D], got ", x.describe());
  check_shape(w, {x.size(0)}, op, "w");
  check_same_dtype(x, w, op);
  check_contiguous(x, op, "x");
  check_contiguous(w, op, "w");
}

void scale_rows(Tensor& y, const Tensor& x, const Tensor& w) {
  TV_PROFILE("scale_rows");
  const char* op = "scale_rows";
  check_rows(op, x, w);
  check_shape(y, x.shape(), op, "y");
  const Device dev = common_device(op, &y, &x, &w);
  TV_DISPATCH(dev, "scale_rows", x.dtype(), op, TV_KERNEL(KT, scale_rows)(y.data<T>(), x.data<T>(), w.data<T>(), x.size(0), x.size(1)));
}

void scale_rows_bwd(Tensor* dx, Tensor* dw, const Tensor& dy, const Tensor& x, const Tensor& w) {
  TV_PROFILE("scale_rows_bwd");
  const char* op = "scale_rows_bwd";
  check_rows(op, x, w);
  check_shape(dy, x.shape(), op, "dy");
  if (dx) check_shape(*dx, x.shape(), op, "dx");
  if (dw) check_shape(*dw, w.shape(), op, "dw");
  const Device dev = common_device(op, &dy, &x, &w, dx, dw);
  TV_DISPATCH(dev, "scale_rows", x.dtype(), op,
                    TV_KERNEL(KT, scale_rows_bwd)(ptr_or_null<T>(dx), ptr_or_null<T>(dw), dy.data<T>(), x.data<T>(),
                                           w.data<T>(), x.size(0), x.size(1)));
}

void row_dot(Tensor& out, const Tensor& a, const Tensor& b) {
  TV_PROFILE("row_dot");
  const char* op = "row_dot";
  TV_CHECK(a.ndim() == 2, op, ": a must be [n, D], got ", a.describe());
  check_shape(b, a.shape(), op, "b");
  check_shape(out, {a.size(0)}, op, "out");
  check_same_dtype(a, b, op);
  check_same_dtype(a, out, op);
  const Device dev = common_device(op, &out, &a, &b);
  TV_DISPATCH(dev, "row_dot", a.dtype(), op, TV_KERNEL(KT, row_dot)(out.data<T>(), a.data<T>(), b.data<T>(), a.size(0), a.size(1)));
}

void row_dot_bwd(Tensor* da, Tensor* db, const Tensor& dout, const Tensor& a, const Tensor& b) {
  TV_PROFILE("row_dot_bwd");
  const char* op = "row_dot_bwd";
  TV_CHECK(a.ndim() == 2, op, ": a must be [n, D], got ", a.describe());
  check_shape(b, a.shape(), op, "b");
  check_shape(dout, {a.size(0)}, op, "dout");
  if (da) check_shape(*da, a.shape(), op, "da");
  if (db) check_shape(*db, b.shape(), op, "db");
  const Device dev = common_device(op, &dout, &a, &b, da, db);
  TV_DISPATCH(dev, "row_dot", a.dtype(), op,
                    TV_KERNEL(KT, row_dot_bwd)(ptr_or_null<T>(da), ptr_or_null<T>(db), dout.data<T>(), a.data<T>(),
                                        b.data<T>(), a.size(0), a.size(1)));
}

}  // namespace tv::ops
