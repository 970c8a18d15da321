// fp32 -> bf16 as the AVX512-BF16 conversions (VCVTNE2PS2BF16) do it: round to nearest even, denormals
// flushed to zero, NaN kept a (quiet) NaN. The bf16 GEMMs round their operands this way, so anything that
// hands them bf16 data already rounded must round the same way to give the same bits.
#pragma once
#include <bit>
#include <cstdint>

namespace tv::cpu {

inline uint16_t bf16_round(float f) {
  uint32_t u = std::bit_cast<uint32_t>(f);
  if ((u & 0x7f800000u) == 0) return uint16_t((u >> 16) & 0x8000u);                 // zero or denormal
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t(((u >> 16) | 0x40u) & 0xffffu);  // NaN stays NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

inline float bf16_value(uint16_t h) { return std::bit_cast<float>(uint32_t(h) << 16); }

}  // namespace tv::cpu
