// The per-format parts of the inference linears with bf16 or q8 weights (kernels/cpu/gemv_bf16.cpp,
// gemv_q8.cpp), which kernels/cpu/linear_weights.cpp drives: the streaming kernel of each instruction set
// and the conversion of whole weight rows to fp32 (for the large-N path).
#pragma once
#include <cstdint>

namespace tv::cpu {

// y[n * ldy + o] = sum_k x[n * in + k] * w(o, k), n < N, o in [o0, o1); w the whole weight matrix.
using WeightRowsFn = void (*)(float* y, int64_t ldy, const float* x, int64_t N, int64_t in, const void* w,
                              int64_t o0, int64_t o1);

struct WeightFormatRows {
  WeightRowsFn scalar = nullptr, avx2 = nullptr, avx512 = nullptr;
  // Rows [o0, o1) of w as fp32, dst [o1 - o0, in]: the values every kernel multiplies by.
  void (*to_f32)(float* dst, const void* w, int64_t in, int64_t o0, int64_t o1) = nullptr;
};

const WeightFormatRows& bf16_weight_rows();
const WeightFormatRows& q8_weight_rows();

}  // namespace tv::cpu
