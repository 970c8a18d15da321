// fp32 -> bf16 as the AVX512-BF16 conversions (VCVTNE2PS2BF16) do it: round to nearest even, denormals
// flushed to zero, NaN kept a (quiet) NaN. The bf16 GEMMs round their operands this way, so anything that
// hands them bf16 data already rounded must round the same way to give the same bits.
#pragma once
#include <bit>
#include <cstdint>
#include <cstring>

#include "kernels/cpu/vec.h"

namespace tv::cpu {

inline uint16_t bf16_round(float f) {
  uint32_t u = std::bit_cast<uint32_t>(f);
  if ((u & 0x7f800000u) == 0) return uint16_t((u >> 16) & 0x8000u);                 // zero or denormal
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t(((u >> 16) | 0x40u) & 0xffffu);  // NaN stays NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

inline float bf16_value(uint16_t h) { return std::bit_cast<float>(uint32_t(h) << 16); }

// bf16_round on 8 lanes at once, the same bits.
inline void bf16_round_lanes(uint16_t* dst, Vec<float> f) {
  typedef uint32_t U32 __attribute__((vector_size(32)));
  typedef uint16_t U16 __attribute__((vector_size(16)));
  const U32 u = std::bit_cast<U32>(f);
  U32 r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  r = (u & 0x7f800000u) == 0 ? (u >> 16) & 0x8000u : r;
  r = (u & 0x7fffffffu) > 0x7f800000u ? ((u >> 16) | 0x40u) & 0xffffu : r;
  const U16 h = __builtin_convertvector(r, U16);
  std::memcpy(dst, &h, sizeof(h));
}

}  // namespace tv::cpu
