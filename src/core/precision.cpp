#include "core/precision.h"

#include <atomic>

#include "core/error.h"

namespace tv {

namespace {
std::atomic<MatmulPrecision> g_matmul_precision{MatmulPrecision::F32};
}

void set_matmul_precision(MatmulPrecision p) { g_matmul_precision.store(p, std::memory_order_relaxed); }
MatmulPrecision matmul_precision() { return g_matmul_precision.load(std::memory_order_relaxed); }

MatmulPrecision parse_matmul_precision(std::string_view s, std::string_view where) {
  if (s == "fp32") return MatmulPrecision::F32;
  if (s == "bf16") return MatmulPrecision::BF16;
  fail(std::string(where), " \"", std::string(s), "\": expected \"fp32\" or \"bf16\"");
}



}  // namespace tv
