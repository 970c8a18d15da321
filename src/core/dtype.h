// Element types. fp32 is the compute type on the CPU; bf16 is a storage type (checkpoints, feature
// caches, the CUDA backend); f64 exists so gradient checks can run in double precision.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>

namespace tv {

enum class DType : uint8_t { F32, F64, BF16, I32, U16, U8 };

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::F64: return 8;
    case DType::F32: case DType::I32: return 4;
    case DType::BF16: case DType::U16: return 2;
    case DType::U8: return 1;
  }
  return 0;
}

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::F64: return "f64";
    case DType::BF16: return "bf16";
    case DType::I32: return "i32";
    case DType::U16: return "u16";
    case DType::U8: return "u8";
  }
  return "?";
}

struct bf16 {
  uint16_t bits;
};

// Round to nearest even, as PyTorch does; NaN stays NaN.
inline bf16 f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{uint16_t((u >> 16) | 0x40)};
  u += 0x7fffu + ((u >> 16) & 1u);
  return bf16{uint16_t(u >> 16)};
}

inline float bf16_to_f32(bf16 h) {
  uint32_t u = uint32_t(h.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

template <typename T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::F32; }
template <> constexpr DType dtype_of<double>() { return DType::F64; }
template <> constexpr DType dtype_of<bf16>() { return DType::BF16; }
template <> constexpr DType dtype_of<int32_t>() { return DType::I32; }
template <> constexpr DType dtype_of<uint16_t>() { return DType::U16; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::U8; }

}  // namespace tv
