// Element types as checkpoint files store them (a superset of the engine's DType), and their conversion
// to engine tensors. Shared by the safetensors and torch.save readers so both load the same way.
#pragma once
#include <cstdint>
#include <string>

#include "core/tensor.h"

namespace tv {

enum class StoredDType : uint8_t { F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, Bool, Unsupported };

size_t stored_dtype_size(StoredDType t);      // bytes per element (0 for Unsupported)
const char* stored_dtype_name(StoredDType t);  // safetensors spelling: "F32", "BF16", ...

// `n` elements of type `t` at `src` (little-endian, any alignment), as a new host tensor of `shape`.
// f16 becomes f32 and i64 becomes i32 (range-checked), since the engine has neither; bool becomes u8; f32,
// f64, bf16, i32, u16, u8 are kept. Other types are an error naming `where` (file and tensor).
Tensor decode_stored(StoredDType t, const Shape& shape, const unsigned char* src, const std::string& where);

}  // namespace tv
