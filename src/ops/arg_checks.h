// Argument checks used by the ops beyond those of core/tensor.h: each names the op and the argument
// and says what was expected.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "core/error.h"
#include "core/grad_mode.h"
#include "core/tensor.h"

namespace tv {

// t is defined, has this shape and dtype, and is contiguous.
inline void check_arg(const Tensor& t, const char* op, const char* arg, const Shape& shape, DType dtype) {
  check_shape(t, shape, op, arg);
  if (t.dtype() != dtype) fail(op, ": ", arg, " should be ", dtype_name(dtype), ", got ", t.describe());
  check_contiguous(t, op, arg);
}

// t has the shape and dtype of `like` and is contiguous.
inline void check_like(const Tensor& t, const Tensor& like, const char* op, const char* arg) {
  check_arg(t, op, arg, like.shape(), like.dtype());
}

// Per-weight gradient modes (empty: all Accumulate; else one per weight, checked by the caller) as the
// overwrite flags the CPU kernels take.
inline std::unique_ptr<bool[]> overwrite_flags(const std::vector<ops::GradMode>& modes, size_t n) {
  std::unique_ptr<bool[]> over(new bool[n]());
  for (size_t i = 0; i < modes.size(); ++i) over[i] = modes[i] == ops::GradMode::Overwrite;
  return over;
}

// Weights stored for inference (`--weights bf16|q8`) run forward only: a backward or update refuses them.
inline bool is_inference_weight(const Tensor& w) { return w.dtype() == DType::BF16 || w.dtype() == DType::Q8; }
inline void refuse_inference_weight(const Tensor& w, const char* op) {
  if (w.defined() && is_inference_weight(w))
    fail(op, ": the weight is ", dtype_name(w.dtype()), ", converted for inference (--weights ",
         w.dtype() == DType::Q8 ? "q8" : "bf16", "); a converted model runs forward only and cannot be trained");
}

// Rows of a tensor normalised over its last dim: every dim but the last.
inline int64_t leading_rows(const Tensor& x) { return x.ndim() == 0 || x.size(-1) == 0 ? 0 : x.numel() / x.size(-1); }

// A per-row statistic (rstd, mean): one element per row of x, x's dtype, contiguous.
inline void check_row_stat(const Tensor& t, const Tensor& x, const char* op, const char* arg) {
  const int64_t rows = leading_rows(x);
  if (!t.defined() || t.numel() != rows || t.dtype() != x.dtype() || !t.is_contiguous())
    fail(op, ": ", arg, " should be a contiguous ", dtype_name(x.dtype()), " tensor of ", rows,
         " elements (one per row of ", x.describe(), "), got ", t.describe());
}

// Every entry of the i32 index tensor `ids` (on the CPU) lies in [0, upper); the first that does not is
// named with its position.
inline void check_index_range(const Tensor& ids, int64_t upper, const char* op, const char* arg, const char* target) {
  const int32_t* p = ids.data<int32_t>();
  for (int64_t n = 0; n < ids.numel(); ++n)
    if (p[n] < 0 || p[n] >= upper)
      fail(op, ": ", arg, "[", n, "] = ", p[n], " is out of range for ", target, " with ", upper, " rows");
}

}  // namespace tv
