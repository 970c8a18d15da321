#include "core/ops.h"
#include "core/precision.h"
#include "core/profile.h"
#include "ops/dispatch.h"

namespace tv::ops {

// targets i32 [N], each in [0, V) or ignore_index.
static void check_targets(const char* op, const Tensor& targets, int64_t N, int64_t V, int32_t ignore_index) {
  TV_CHECK(targets.dtype() == DType::I32, op, ": targets must be i32, got ", targets.describe());
  check_shape(targets, {N}, op, "targets");
  check_contiguous(targets, op, "targets");
  if (targets.device() != Device::CPU) return;  // validated by the device kernel
  const int32_t* t = targets.data<int32_t>();
  for (int64_t n = 0; n < N; ++n)
    if (t[n] != ignore_index && (t[n] < 0 || t[n] >= V))
      fail(op, ": target ", t[n], " at row ", n, " is outside [0, ", V, ") and is not the ignore index ",
           ignore_index);
}

// logits [N, V] float, targets i32 [N] each in [0, V) or ignore_index.
static void check_cross_entropy(const char* op, const Tensor& logits, const Tensor& targets, int32_t ignore_index) {
  TV_CHECK(logits.ndim() == 2, op, ": logits [N, V] expected, got ", logits.describe());
  check_contiguous(logits, op, "logits");
  check_targets(op, targets, logits.size(0), logits.size(1), ignore_index);
}

static void check_row_vector(const char* op, const Tensor& t, const Tensor& logits, const char* name) {
  check_shape(t, {logits.size(0)}, op, name);
  check_same_dtype(logits, t, op);
  check_contiguous(t, op, name);
}

int64_t cross_entropy_fwd(Tensor& losses, Tensor& lse, const Tensor& logits, const Tensor& targets,
                          int32_t ignore_index) {
  TV_PROFILE("cross_entropy_fwd");
  const char* op = "cross_entropy_fwd";
  check_cross_entropy(op, logits, targets, ignore_index);
  check_row_vector(op, losses, logits, "losses");
  check_row_vector(op, lse, logits, "lse");
  const Device dev = common_device(op, &losses, &lse, &logits, &targets);
  int64_t counted = 0;
  TV_DISPATCH(dev, "cross_entropy", logits.dtype(), op,
                    counted = TV_KERNEL(KT, cross_entropy_fwd)(losses.data<T>(), lse.data<T>(), logits.data<T>(),
                                                        targets.data<int32_t>(), logits.size(0), logits.size(1),
                                                        ignore_index));
  return counted;
}

void cross_entropy_bwd(Tensor& dlogits, const Tensor& dlosses, const Tensor& logits, const Tensor& targets,
                       const Tensor& lse, int32_t ignore_index) {
  TV_PROFILE("cross_entropy_bwd");
  const char* op = "cross_entropy_bwd";
  check_cross_entropy(op, logits, targets, ignore_index);
  check_shape(dlogits, logits.shape(), op, "dlogits");
  check_same_dtype(logits, dlogits, op);
  check_contiguous(dlogits, op, "dlogits");
  check_row_vector(op, dlosses, logits, "dlosses");
  check_row_vector(op, lse, logits, "lse");
  const Device dev = common_device(op, &dlogits, &dlosses, &logits, &targets, &lse);
  TV_DISPATCH(dev, "cross_entropy", logits.dtype(), op,
                    TV_KERNEL(KT, cross_entropy_bwd)(dlogits.data<T>(), dlosses.data<T>(), logits.data<T>(),
                                              targets.data<int32_t>(), lse.data<T>(), logits.size(0), logits.size(1),
                                              ignore_index));
}

int64_t cross_entropy_with_grad(Tensor& losses, Tensor& dlogits, const Tensor& logits, const Tensor& targets,
                                double grad_scale, int32_t ignore_index) {
  TV_PROFILE("cross_entropy_with_grad");
  const char* op = "cross_entropy_with_grad";
  check_cross_entropy(op, logits, targets, ignore_index);
  check_row_vector(op, losses, logits, "losses");
  check_shape(dlogits, logits.shape(), op, "dlogits");
  check_contiguous(dlogits, op, "dlogits");
  const Device dev = common_device(op, &losses, &dlogits, &logits, &targets);
  int64_t counted = 0;
  if (dlogits.dtype() == DType::BF16 && logits.dtype() == DType::F32)  // the gradient for bf16 products
    return TV_KERNEL(bf16_kernels(dev, "cross_entropy_with_grad", op), cross_entropy_with_grad)(losses.data<float>(), reinterpret_cast<uint16_t*>(dlogits.raw()),
                                             logits.data<float>(), targets.data<int32_t>(), logits.size(0),
                                             logits.size(1), float(grad_scale), ignore_index);
  check_same_dtype(logits, dlogits, op);
  TV_DISPATCH(dev, "cross_entropy_with_grad", logits.dtype(), op,
                    counted = TV_KERNEL(KT, cross_entropy_with_grad)(losses.data<T>(), dlogits.data<T>(), logits.data<T>(),
                                                              targets.data<int32_t>(), logits.size(0), logits.size(1),
                                                              T(grad_scale), ignore_index));
  return counted;
}

int64_t linear_cross_entropy_with_grad(Tensor& losses, Tensor& dlogits, const Tensor& x, const Tensor& w,
                                       const Tensor& targets, double grad_scale, int32_t ignore_index) {
  TV_PROFILE("linear_cross_entropy_with_grad");
  const char* op = "linear_cross_entropy_with_grad";
  TV_CHECK(x.ndim() == 2 && w.ndim() == 2 && x.size(1) == w.size(1), op, ": x [N, D] and w [V, D] expected, got ",
           x.describe(), " and ", w.describe());
  const int64_t N = x.size(0), D = x.size(1), V = w.size(0);
  check_same_dtype(x, w, op);
  check_contiguous(x, op, "x");
  check_contiguous(w, op, "w");
  check_targets(op, targets, N, V, ignore_index);
  check_shape(dlogits, {N, V}, op, "dlogits");
  check_contiguous(dlogits, op, "dlogits");
  check_shape(losses, {N}, op, "losses");
  check_same_dtype(x, losses, op);
  const Device dev = common_device(op, &losses, &dlogits, &x, &w, &targets);
  if (dlogits.dtype() == DType::BF16 && x.dtype() == DType::F32 && matmul_precision() == MatmulPrecision::BF16)
    return TV_KERNEL(bf16_kernels(dev, "linear_cross_entropy_with_grad", op), linear_cross_entropy_with_grad)(losses.data<float>(), reinterpret_cast<uint16_t*>(dlogits.raw()),
                                                    x.data<float>(), w.data<float>(), targets.data<int32_t>(), N, D, V,
                                                    float(grad_scale), ignore_index);
  // Otherwise the two ops one after the other; the logits go to dlogits when it can hold them.
  Tensor logits = dlogits.dtype() == x.dtype() ? dlogits : Tensor::empty({N, V}, x.dtype(), x.device());
  linear_fwd(logits, x, w, nullptr);
  return cross_entropy_with_grad(losses, dlogits, logits, targets, grad_scale, ignore_index);
}

}  // namespace tv::ops
