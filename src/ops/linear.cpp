#include <memory>

#include "core/ops.h"
#include "core/profile.h"
#include "ops/arg_checks.h"
#include "ops/dispatch.h"

namespace tv::ops {

void matmul(Tensor& c, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, double alpha, double beta) {
  TV_PROFILE("matmul");
  const char* op = "matmul";
  TV_CHECK(a.ndim() == 2 && b.ndim() == 2 && c.ndim() == 2, op, ": 2-D tensors expected, got ", a.describe(), ", ",
           b.describe(), ", ", c.describe());
  int64_t M = trans_a ? a.size(1) : a.size(0), K = trans_a ? a.size(0) : a.size(1);
  int64_t Kb = trans_b ? b.size(1) : b.size(0), N = trans_b ? b.size(0) : b.size(1);
  if (K != Kb) fail(op, ": inner dimensions differ (", K, " vs ", Kb, ")");
  check_shape(c, {M, N}, op, "c");
  check_same_dtype(a, b, op);
  check_same_dtype(a, c, op);
  for (const Tensor* t : {&a, &b, static_cast<const Tensor*>(&c)}) check_contiguous(*t, op, "argument");
  const Device dev = common_device(op, &a, &b, &c);
  TV_DISPATCH(dev, "matmul", a.dtype(), op,
                    TV_KERNEL(KT, gemm)(trans_a, trans_b, M, N, K, T(alpha), a.data<T>(), a.size(1), b.data<T>(), b.size(1),
                                 T(beta), c.data<T>(), N));
}

static void check_linear(const char* op, const Tensor& x, const Tensor& w, const Tensor* b, const Tensor& y) {
  TV_CHECK(x.ndim() == 2 && w.ndim() == 2, op, ": x [N,in] and w [out,in] expected, got ", x.describe(), ", ",
           w.describe());
  int64_t N = x.size(0), in = x.size(1), out = w.size(0);
  check_shape(w, {out, in}, op, "w");
  check_shape(y, {N, out}, op, "y");
  if (b && b->defined()) {
    check_shape(*b, {out}, op, "b");
    check_same_dtype(x, *b, op);
  }
  check_same_dtype(x, w, op);
  check_same_dtype(x, y, op);
  for (const Tensor* t : {&x, &w, &y}) check_contiguous(*t, op, "argument");
}

// y = x @ w^T (+ b) with f32 x, y, b and w stored as bf16 or q8 (inference weights).
static void linear_fwd_inference(Tensor& y, const Tensor& x, const Tensor& w, const Tensor* b, const char* op) {
  TV_CHECK(x.ndim() == 2 && w.ndim() == 2, op, ": x [N,in] and w [out,in] expected, got ", x.describe(), ", ",
           w.describe());
  const int64_t N = x.size(0), in = x.size(1), out = w.size(0);
  check_arg(w, op, "w", {out, in}, w.dtype());
  check_arg(x, op, "x", {N, in}, DType::F32);
  check_arg(y, op, "y", {N, out}, DType::F32);
  if (b && b->defined()) check_arg(*b, op, "b", {out}, DType::F32);
  const Device dev = common_device(op, &y, &x, &w, b);
  const bool q8 = w.dtype() == DType::Q8;
  const KernelBackend& kb = kernel_backend(dev);
  require_support(kb, q8 ? "linear_q8_weights" : "linear_bf16_weights", DType::F32, op);
  if (q8)
    TV_KERNEL(kb.weights, linear_fwd_q8)(y.data<float>(), x.data<float>(), static_cast<const BlockQ8*>(w.raw()),
                                         ptr_or_null<float>(b), N, in, out);
  else
    TV_KERNEL(kb.weights, linear_fwd_bf16)(y.data<float>(), x.data<float>(), static_cast<const uint16_t*>(w.raw()),
                                           ptr_or_null<float>(b), N, in, out);
}

void linear_fwd(Tensor& y, const Tensor& x, const Tensor& w, const Tensor* b) {
  TV_PROFILE("linear_fwd");
  const char* op = "linear_fwd";
  if (is_inference_weight(w) && x.dtype() == DType::F32) return linear_fwd_inference(y, x, w, b, op);
  check_linear(op, x, w, b, y);
  const Device dev = common_device(op, &y, &x, &w, b);
  TV_DISPATCH(dev, "linear", x.dtype(), op,
                    TV_KERNEL(KT, linear_fwd)(y.data<T>(), x.data<T>(), w.data<T>(), ptr_or_null<T>(b), x.size(0), x.size(1),
                                       w.size(0)));
}

void linear_bwd(Tensor* dx, Tensor* dw, Tensor* db, const Tensor& dy, const Tensor& x, const Tensor& w,
                GradMode dx_mode, GradMode dw_mode) {
  TV_PROFILE("linear_bwd");
  const bool over = dx_mode == GradMode::Overwrite, dw_over = dw_mode == GradMode::Overwrite;
  const char* op = "linear_bwd";
  refuse_inference_weight(w, op);
  if (dy.dtype() == DType::BF16 && x.dtype() == DType::F32) {  // bf16 gradient: bf16 products
    TV_CHECK(x.ndim() == 2 && w.ndim() == 2 && w.size(1) == x.size(1), op, ": x [N,in] and w [out,in] expected, got ",
             x.describe(), ", ", w.describe());
    check_shape(dy, {x.size(0), w.size(0)}, op, "dy");
    check_same_dtype(x, w, op);
    for (const Tensor* t : {&x, &w, &dy}) check_contiguous(*t, op, "argument");
    TV_CHECK(!db, op, ": a bias gradient from a bf16 dy is not supported");
    if (dx) check_like(*dx, x, op, "dx");
    if (dw) check_like(*dw, w, op, "dw");
    const Device dev = common_device(op, &dy, &x, &w, dx, dw);
    TV_KERNEL(bf16_kernels(dev, "linear", op), linear_bwd_bf16dy)(dx ? dx->data<float>() : nullptr, dw ? dw->data<float>() : nullptr,
                           reinterpret_cast<const uint16_t*>(dy.raw()), x.data<float>(), w.data<float>(), x.size(0),
                           x.size(1), w.size(0), over, dw_over);
    return;
  }
  check_linear(op, x, w, nullptr, dy);
  if (dx) check_shape(*dx, x.shape(), op, "dx");
  if (dw) check_shape(*dw, w.shape(), op, "dw");
  if (db) check_shape(*db, {w.size(0)}, op, "db");
  const Device dev = common_device(op, &dy, &x, &w, dx, dw, db);
  TV_DISPATCH(dev, "linear", x.dtype(), op,
                    TV_KERNEL(KT, linear_bwd)(ptr_or_null<T>(dx), ptr_or_null<T>(dw), ptr_or_null<T>(db), dy.data<T>(),
                                       x.data<T>(), w.data<T>(), x.size(0), x.size(1), w.size(0), over, dw_over));
}

void linear_bwd_shared_input(Tensor* dx, const std::vector<Tensor*>& dw, const std::vector<const Tensor*>& dy,
                             const Tensor& x, const std::vector<const Tensor*>& w, GradMode dx_mode,
                             const std::vector<GradMode>& dw_modes) {
  TV_PROFILE("linear_bwd_shared_input");
  const char* op = "linear_bwd_shared_input";
  const size_t n = w.size();
  TV_CHECK(n > 0, op, ": no linears");
  TV_CHECK(dy.size() == n && dw.size() == n && (dw_modes.empty() || dw_modes.size() == n), op, ": ", n,
           " weights but ", dy.size(), " output gradients, ", dw.size(), " weight gradients and ", dw_modes.size(),
           " modes");
  std::vector<int64_t> outs;
  const Device dev = common_device(op, &x);
  const std::unique_ptr<bool[]> dw_over = overwrite_flags(dw_modes, n);
  for (size_t i = 0; i < n; ++i) {
    TV_CHECK(w[i] && dy[i], op, ": null weight or output gradient");
    refuse_inference_weight(*w[i], op);
    check_linear(op, x, *w[i], nullptr, *dy[i]);
    if (dw[i]) check_shape(*dw[i], w[i]->shape(), op, "dw");
    outs.push_back(w[i]->size(0));
    same_device(op, dev, common_device(op, &x, w[i], dy[i], dw[i]));
  }
  if (dx) {
    check_like(*dx, x, op, "dx");
    same_device(op, dev, common_device(op, &x, dx));
  }
  TV_DISPATCH(dev, "linear", x.dtype(), op, {
    std::vector<T*> dwp;
    std::vector<const T*> dyp, wp;
    for (size_t i = 0; i < n; ++i) {
      dwp.push_back(ptr_or_null<T>(dw[i]));
      dyp.push_back(dy[i]->data<T>());
      wp.push_back(w[i]->data<T>());
    }
    TV_KERNEL(KT, linear_bwd_shared_input)(ptr_or_null<T>(dx), dwp.data(), dyp.data(), x.data<T>(), wp.data(), outs.data(),
                                    int64_t(n), x.size(0), x.size(1), dx_mode == GradMode::Overwrite, dw_over.get());
  });
}

}  // namespace tv::ops
