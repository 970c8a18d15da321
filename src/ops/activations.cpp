#include "core/ops.h"
#include "core/profile.h"
#include "ops/arg_checks.h"
#include "ops/dispatch.h"

namespace tv::ops {

void silu_fwd(Tensor& y, const Tensor& x) {
  TV_PROFILE("silu_fwd");
  const char* op = "silu_fwd";
  check_contiguous(x, op, "x");
  check_like(y, x, op, "y");
  const Device dev = common_device(op, &y, &x);
  TV_DISPATCH(dev, "silu", x.dtype(), op, TV_KERNEL(KT, silu_fwd)(y.data<T>(), x.data<T>(), x.numel()));
}

void silu_bwd(Tensor& dx, const Tensor& dy, const Tensor& x) {
  TV_PROFILE("silu_bwd");
  const char* op = "silu_bwd";
  check_contiguous(x, op, "x");
  check_like(dy, x, op, "dy");
  check_like(dx, x, op, "dx");
  const Device dev = common_device(op, &dx, &dy, &x);
  TV_DISPATCH(dev, "silu", x.dtype(), op, TV_KERNEL(KT, silu_bwd)(dx.data<T>(), dy.data<T>(), x.data<T>(), x.numel()));
}

void swiglu_fwd(Tensor& h, const Tensor& gate, const Tensor& up) {
  TV_PROFILE("swiglu_fwd");
  const char* op = "swiglu_fwd";
  check_contiguous(gate, op, "gate");
  check_like(up, gate, op, "up");
  check_like(h, gate, op, "h");
  const Device dev = common_device(op, &h, &gate, &up);
  TV_DISPATCH(dev, "swiglu", gate.dtype(), op, TV_KERNEL(KT, swiglu_fwd)(h.data<T>(), gate.data<T>(), up.data<T>(), gate.numel()));
}

void swiglu_bwd(Tensor* dgate, Tensor* dup, const Tensor& dh, const Tensor& gate, const Tensor& up, GradMode mode) {
  TV_PROFILE("swiglu_bwd");
  const char* op = "swiglu_bwd";
  check_contiguous(gate, op, "gate");
  check_like(up, gate, op, "up");
  check_like(dh, gate, op, "dh");
  if (dgate) check_like(*dgate, gate, op, "dgate");
  if (dup) check_like(*dup, gate, op, "dup");
  const Device dev = common_device(op, &dh, &gate, &up, dgate, dup);
  TV_DISPATCH(dev, "swiglu", gate.dtype(), op,
                    TV_KERNEL(KT, swiglu_bwd)(ptr_or_null<T>(dgate), ptr_or_null<T>(dup), dh.data<T>(), gate.data<T>(),
                                       up.data<T>(), gate.numel(), mode == GradMode::Overwrite));
}

void gelu_fwd(Tensor& y, const Tensor& x) {
  TV_PROFILE("gelu_fwd");
  const char* op = "gelu_fwd";
  check_contiguous(x, op, "x");
  check_like(y, x, op, "y");
  const Device dev = common_device(op, &y, &x);
  TV_DISPATCH(dev, "gelu", x.dtype(), op, TV_KERNEL(KT, gelu_fwd)(y.data<T>(), x.data<T>(), x.numel()));
}

void gelu_bwd(Tensor& dx, const Tensor& dy, const Tensor& x) {
  TV_PROFILE("gelu_bwd");
  const char* op = "gelu_bwd";
  check_contiguous(x, op, "x");
  check_like(dy, x, op, "dy");
  check_like(dx, x, op, "dx");
  const Device dev = common_device(op, &dx, &dy, &x);
  TV_DISPATCH(dev, "gelu", x.dtype(), op, TV_KERNEL(KT, gelu_bwd)(dx.data<T>(), dy.data<T>(), x.data<T>(), x.numel()));
}

}  // namespace tv::ops
