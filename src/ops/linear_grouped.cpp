#include <memory>

#include "core/ops.h"
#include "core/profile.h"
#include "ops/arg_checks.h"
#include "ops/dispatch.h"

namespace tv::ops {

namespace {

// w_dtype: the weights' dtype when it differs from x's (inference weights), else x's.
Device check_grouped(const char* op, const Tensor& x, const std::vector<const Tensor*>& w,
                   const std::vector<int64_t>& offsets, const Tensor& y, DType w_dtype) {
  TV_CHECK(x.ndim() == 2, op, ": x [rows, in] expected, got ", x.describe());
  TV_CHECK(!w.empty() && offsets.size() == w.size() + 1, op, ": ", w.size(), " weights need ", w.size() + 1,
           " offsets, got ", offsets.size());
  TV_CHECK(offsets.front() == 0 && offsets.back() == x.size(0), op, ": offsets must run from 0 to the ", x.size(0),
           " rows of x, got ", offsets.front(), "..", offsets.back());
  for (size_t g = 0; g + 1 < offsets.size(); ++g)
    TV_CHECK(offsets[g] <= offsets[g + 1], op, ": offsets must not decrease (group ", g, ")");
  const int64_t in = x.size(1);
  TV_CHECK(w[0] != nullptr, op, ": null weight");
  const int64_t out = w[0]->size(0);
  for (const Tensor* t : w) {
    TV_CHECK(t != nullptr, op, ": null weight");
    check_shape(*t, {out, in}, op, "w[g]");
    if (t->dtype() != w_dtype) fail(op, ": w[g] should be ", dtype_name(w_dtype), ", got ", t->describe());
    check_contiguous(*t, op, "w[g]");
  }
  check_shape(y, {x.size(0), out}, op, "y");
  check_same_dtype(x, y, op);
  check_contiguous(x, op, "x");
  check_contiguous(y, op, "y");
  const Device dev = common_device(op, &x, &y);
  for (const Tensor* t : w) same_device(op, dev, common_device(op, t));
  return dev;
}

template <typename T>
std::vector<const T*> weight_ptrs(const std::vector<const Tensor*>& w) {
  std::vector<const T*> p;
  for (const Tensor* t : w) p.push_back(t->data<T>());
  return p;
}

}  // namespace

void linear_grouped_fwd(Tensor& y, const Tensor& x, const std::vector<const Tensor*>& w,
                        const std::vector<int64_t>& offsets) {
  TV_PROFILE("linear_grouped_fwd");
  const char* op = "linear_grouped_fwd";
  if (!w.empty() && w[0] && is_inference_weight(*w[0]) && x.dtype() == DType::F32) {
    const DType wt = w[0]->dtype();
    for (const Tensor* t : w) {
      TV_CHECK(t != nullptr, op, ": null weight");
      TV_CHECK(t->dtype() == wt, op, ": every weight should be ", dtype_name(wt), ", got ", t->describe());
    }
    const Device dev = check_grouped(op, x, w, offsets, y, wt);
    const KernelBackend& kb = kernel_backend(dev);
    std::vector<const void*> p;
    for (const Tensor* t : w) p.push_back(t->raw());
    if (wt == DType::Q8) {
      require_support(kb, "linear_q8_weights", DType::F32, op);
      TV_KERNEL(kb.weights, linear_grouped_fwd_q8)(y.data<float>(), x.data<float>(),
                                                   reinterpret_cast<const BlockQ8* const*>(p.data()), offsets.data(),
                                                   int64_t(w.size()), x.size(1), y.size(1));
    } else {
      require_support(kb, "linear_bf16_weights", DType::F32, op);
      TV_KERNEL(kb.weights, linear_grouped_fwd_bf16)(y.data<float>(), x.data<float>(),
                                                     reinterpret_cast<const uint16_t* const*>(p.data()),
                                                     offsets.data(), int64_t(w.size()), x.size(1), y.size(1));
    }
    return;
  }
  const Device dev = check_grouped(op, x, w, offsets, y, x.dtype());
  TV_DISPATCH(dev, "linear_grouped", x.dtype(), op,
                    TV_KERNEL(KT, linear_grouped_fwd)(y.data<T>(), x.data<T>(), weight_ptrs<T>(w).data(), offsets.data(),
                                               int64_t(w.size()), x.size(1), y.size(1)));
}

void linear_grouped_bwd(Tensor* dx, const std::vector<Tensor*>& dw, const Tensor& dy, const Tensor& x,
                        const std::vector<const Tensor*>& w, const std::vector<int64_t>& offsets, GradMode dx_mode,
                        const std::vector<GradMode>& dw_modes) {
  TV_PROFILE("linear_grouped_bwd");
  const char* op = "linear_grouped_bwd";
  for (const Tensor* t : w)
    if (t) refuse_inference_weight(*t, op);
  const Device dev = check_grouped(op, x, w, offsets, dy, x.dtype());
  TV_CHECK(dw.size() == w.size(), op, ": ", w.size(), " weights but ", dw.size(), " weight gradients");
  TV_CHECK(dw_modes.empty() || dw_modes.size() == w.size(), op, ": ", w.size(), " weights but ", dw_modes.size(),
           " weight gradient modes");
  const std::unique_ptr<bool[]> dw_over = overwrite_flags(dw_modes, w.size());
  if (dx) {
    check_shape(*dx, x.shape(), op, "dx");
    check_same_dtype(x, *dx, op);
    check_contiguous(*dx, op, "dx");
    same_device(op, dev, common_device(op, dx));
  }
  for (size_t g = 0; g < dw.size(); ++g)
    if (dw[g]) {
      check_shape(*dw[g], w[g]->shape(), op, "dw[g]");
      check_same_dtype(x, *dw[g], op);
      check_contiguous(*dw[g], op, "dw[g]");
      same_device(op, dev, common_device(op, dw[g]));
    }
  TV_DISPATCH(dev, "linear_grouped", x.dtype(), op, {
    std::vector<T*> dwp;
    for (Tensor* t : dw) dwp.push_back(t ? t->data<T>() : nullptr);
    TV_KERNEL(KT, linear_grouped_bwd)(dx ? dx->data<T>() : nullptr, dwp.data(), dy.data<T>(), x.data<T>(),
                               weight_ptrs<T>(w).data(), offsets.data(), int64_t(w.size()), x.size(1), dy.size(1),
                               dx_mode == GradMode::Overwrite, dw_over.get());
  });
}

}  // namespace tv::ops
