// Element types. fp32 is the compute type on the CPU; bf16 is a storage type (checkpoints, feature
// caches, the CUDA backend, `--weights bf16`); f64 exists so gradient checks can run in double precision.
// Q8 is a block type for inference weights (`--weights q8`): see BlockQ8.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>

namespace tv {

enum class DType : uint8_t { F32, F64, BF16, I32, U16, U8, Q8 };

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::F64: return 8;
    case DType::F32: case DType::I32: return 4;
    case DType::BF16: case DType::U16: return 2;
    case DType::U8: case DType::Q8: return 1;  // Q8: the quants; the scales come on top (dtype_bytes)
  }
  return 0;
}

// Symmetric 8-bit blocks: a run of 32 consecutive values along the last dimension (a weight's input
// dimension) stored as value = scale * q. A Q8 tensor [.., n] holds n / 32 blocks per row, row after row;
// n must be a multiple of 32.
constexpr int64_t kQ8Block = 32;
struct BlockQ8 {
  float scale;
  int8_t q[kQ8Block];
};
static_assert(sizeof(BlockQ8) == 36, "BlockQ8 is a float and 32 bytes, unpadded");

// Bytes of n elements (n a multiple of kQ8Block for Q8).
inline size_t dtype_bytes(DType t, size_t n) {
  return t == DType::Q8 ? n / kQ8Block * sizeof(BlockQ8) : n * dtype_size(t);
}

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::F64: return "f64";
    case DType::BF16: return "bf16";
    case DType::I32: return "i32";
    case DType::U16: return "u16";
    case DType::U8: return "u8";
    case DType::Q8: return "q8";
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
