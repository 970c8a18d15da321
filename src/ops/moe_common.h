// Argument checks shared by the MoE router and the load-balancing loss.
#pragma once
#include "core/tensor.h"

namespace tv::ops {

// idx i32 [N, k], contiguous, every entry in [0, E).
inline void check_expert_ids(const char* op, const Tensor& idx, int64_t N, int64_t E) {
  TV_CHECK(idx.dtype() == DType::I32 && idx.ndim() == 2 && idx.size(0) == N, op, ": idx i32 [", N,
           ", k] expected, got ", idx.describe());
  check_contiguous(idx, op, "idx");
  if (idx.device() != Device::CPU) return;  // validated by the device kernel
  const int32_t* id = idx.data<int32_t>();
  for (int64_t i = 0; i < idx.numel(); ++i)
    if (id[i] < 0 || id[i] >= E) fail(op, ": expert id ", id[i], " at position ", i, " is outside [0, ", E, ")");
}

}  // namespace tv::ops
