// Matrix-multiply precision for fp32 tensors, the analogue of torch.set_float32_matmul_precision:
// "fp32" (the default) multiplies in fp32; "bf16" rounds both operands of every fp32 GEMM to bfloat16
// (round to nearest even) and keeps fp32 products, sums, weights, gradients and optimizer state.
// On CPUs with AVX512-BF16 that doubles the multiply rate; elsewhere the rounding is emulated, so
// results agree across machines up to summation order. fp64 GEMMs are never affected.
#pragma once
#include <string>
#include <string_view>

namespace tv {

enum class MatmulPrecision { F32, BF16 };

void set_matmul_precision(MatmulPrecision p);
MatmulPrecision matmul_precision();

// "fp32" or "bf16"; anything else throws, naming `where` (e.g. the config file and key) and what was
// expected.
MatmulPrecision parse_matmul_precision(std::string_view s, std::string_view where = "matmul precision");

// Whether bf16 GEMMs run natively is a property of the backend: ops::bf16_matmuls_native(device).

// Sets the precision for the lifetime of the object, then restores the previous one.
struct MatmulPrecisionScope {
  explicit MatmulPrecisionScope(MatmulPrecision p) : saved(matmul_precision()) { set_matmul_precision(p); }
  ~MatmulPrecisionScope() { set_matmul_precision(saved); }
  MatmulPrecisionScope(const MatmulPrecisionScope&) = delete;
  MatmulPrecisionScope& operator=(const MatmulPrecisionScope&) = delete;
  MatmulPrecision saved;
};

}  // namespace tv
