#include "core/ops.h"
#include "core/profile.h"
#include "kernels/cpu/cpu_ops.h"
#include "ops/arg_checks.h"
#include "ops/dispatch.h"

namespace tv::ops {

void silu_fwd(Tensor& y, const Tensor& x) {
  TV_PROFILE("silu_fwd");
  const char* op = "silu_fwd";
  check_contiguous(x, op, "x");
  check_like(y, x, op, "y");
  require_cpu(common_device(op, &y, &x), op);
  TV_DISPATCH_FLOAT(x.dtype(), op, cpu::silu_fwd<T>(y.data<T>(), x.data<T>(), x.numel()));
}

void silu_bwd(Tensor& dx, const Tensor& dy, const Tensor& x) {
  TV_PROFILE("silu_bwd");
  const char* op = "silu_bwd";
  check_contiguous(x, op, "x");
  check_like(dy, x, op, "dy");
  check_like(dx, x, op, "dx");
  require_cpu(common_device(op, &dx, &dy, &x), op);
  TV_DISPATCH_FLOAT(x.dtype(), op, cpu::silu_bwd<T>(dx.data<T>(), dy.data<T>(), x.data<T>(), x.numel()));
}

void swiglu_fwd(Tensor& h, const Tensor& gate, const Tensor& up) {
  TV_PROFILE("swiglu_fwd");
  const char* op = "swiglu_fwd";
  check_contiguous(gate, op, "gate");
  check_like(up, gate, op, "up");
  check_like(h, gate, op, "h");
  require_cpu(common_device(op, &h, &gate, &up), op);
  TV_DISPATCH_FLOAT(gate.dtype(), op, cpu::swiglu_fwd<T>(h.data<T>(), gate.data<T>(), up.data<T>(), gate.numel()));
}

void swiglu_bwd(Tensor* dgate, Tensor* dup, const Tensor& dh, const Tensor& gate, const Tensor& up, GradMode mode) {
  TV_PROFILE("swiglu_bwd");
  const char* op = "swiglu_bwd";
  check_contiguous(gate, op, "gate");
  check_like(up, gate, op, "up");
  check_like(dh, gate, op, "dh");
  if (dgate) check_like(*dgate, gate, op, "dgate");
  if (dup) check_like(*dup, gate, op, "dup");
  require_cpu(common_device(op, &dh, &gate, &up, dgate, dup), op);
  TV_DISPATCH_FLOAT(gate.dtype(), op,
                    cpu::swiglu_bwd<T>(ptr_or_null<T>(dgate), ptr_or_null<T>(dup), dh.data<T>(), gate.data<T>(),
                                       up.data<T>(), gate.numel(), mode == GradMode::Overwrite));
}

void gelu_fwd(Tensor& y, const Tensor& x) {
  TV_PROFILE("gelu_fwd");
  const char* op = "gelu_fwd";
  check_contiguous(x, op, "x");
  check_like(y, x, op, "y");
  require_cpu(common_device(op, &y, &x), op);
  TV_DISPATCH_FLOAT(x.dtype(), op, cpu::gelu_fwd<T>(y.data<T>(), x.data<T>(), x.numel()));
}

void gelu_bwd(Tensor& dx, const Tensor& dy, const Tensor& x) {
  TV_PROFILE("gelu_bwd");
  const char* op = "gelu_bwd";
  check_contiguous(x, op, "x");
  check_like(dy, x, op, "dy");
  check_like(dx, x, op, "dx");
  require_cpu(common_device(op, &dx, &dy, &x), op);
  TV_DISPATCH_FLOAT(x.dtype(), op, cpu::gelu_bwd<T>(dx.data<T>(), dy.data<T>(), x.data<T>(), x.numel()));
}

}  // namespace tv::ops
