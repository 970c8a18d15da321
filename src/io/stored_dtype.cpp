#include "io/stored_dtype.h"

#include <climits>
#include <cstring>

namespace tv {
namespace {

float half_to_float(uint16_t h) {
  uint32_t sign = uint32_t(h >> 15) << 31, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  uint32_t u;
  if (exp == 0) {
    if (mant == 0) {
      u = sign;
    } else {  // subnormal: renormalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while (!(mant & 0x400));
      u = sign | uint32_t(127 - 15 - e) << 23 | (mant & 0x3ff) << 13;
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000u | mant << 13;
  } else {
    u = sign | (exp + 127 - 15) << 23 | mant << 13;
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace

size_t stored_dtype_size(StoredDType t) {
  switch (t) {
    case StoredDType::F64: case StoredDType::I64: case StoredDType::U64: return 8;
    case StoredDType::F32: case StoredDType::I32: case StoredDType::U32: return 4;
    case StoredDType::F16: case StoredDType::BF16: case StoredDType::I16: case StoredDType::U16: return 2;
    case StoredDType::I8: case StoredDType::U8: case StoredDType::Bool: return 1;
    case StoredDType::Unsupported: return 0;
  }
  return 0;
}

const char* stored_dtype_name(StoredDType t) {
  switch (t) {
    case StoredDType::F64: return "F64";
    case StoredDType::F32: return "F32";
    case StoredDType::F16: return "F16";
    case StoredDType::BF16: return "BF16";
    case StoredDType::I64: return "I64";
    case StoredDType::I32: return "I32";
    case StoredDType::I16: return "I16";
    case StoredDType::I8: return "I8";
    case StoredDType::U64: return "U64";
    case StoredDType::U32: return "U32";
    case StoredDType::U16: return "U16";
    case StoredDType::U8: return "U8";
    case StoredDType::Bool: return "BOOL";
    case StoredDType::Unsupported: return "unsupported";
  }
  return "?";
}

Tensor decode_stored(StoredDType t, const Shape& shape, const unsigned char* src, const std::string& where) {
  const int64_t n = shape_numel(shape);
  auto copy_as = [&](DType d) {
    Tensor out = Tensor::empty(shape, d);
    if (n) std::memcpy(out.raw(), src, size_t(n) * dtype_size(d));
    return out;
  };
  switch (t) {
    case StoredDType::F32: return copy_as(DType::F32);
    case StoredDType::F64: return copy_as(DType::F64);
    case StoredDType::BF16: return copy_as(DType::BF16);
    case StoredDType::I32: return copy_as(DType::I32);
    case StoredDType::U16: return copy_as(DType::U16);
    case StoredDType::U8: case StoredDType::Bool: return copy_as(DType::U8);
    case StoredDType::F16: {
      Tensor out = Tensor::empty(shape, DType::F32);
      float* dst = out.data<float>();
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = half_to_float(h);
      }
      return out;
    }
    case StoredDType::I64: {
      Tensor out = Tensor::empty(shape, DType::I32);
      int32_t* dst = out.data<int32_t>();
      for (int64_t i = 0; i < n; ++i) {
        int64_t v;
        std::memcpy(&v, src + 8 * i, 8);
        if (v < INT32_MIN || v > INT32_MAX) fail(where, " element ", i, " = ", v, " exceeds int32");
        dst[i] = int32_t(v);
      }
      return out;
    }
    default: break;
  }
  fail(where, " has dtype ", stored_dtype_name(t), ", which tinyvlm cannot load");
}

}  // namespace tv
