// Shared by src/ops/*.cpp: dtype dispatch to the templated CPU kernels and device checks.
#pragma once
#include "core/backend.h"
#include "core/error.h"
#include "core/tensor.h"

// Runs the statement list with `T` bound to float or double according to `dtype`.
#define TV_DISPATCH_FLOAT(dtype, opname, ...)                                              \
  switch (dtype) {                                                                         \
    case ::tv::DType::F32: {                                                               \
      using T = float;                                                                     \
      __VA_ARGS__;                                                                         \
      break;                                                                               \
    }                                                                                      \
    case ::tv::DType::F64: {                                                               \
      using T = double;                                                                    \
      __VA_ARGS__;                                                                         \
      break;                                                                               \
    }                                                                                      \
    default:                                                                               \
      ::tv::fail(opname, ": unsupported dtype ", ::tv::dtype_name(dtype), " (f32 or f64)"); \
  }

namespace tv {

// All tensors of a call live on one device; returns it. Null pointers are skipped.
template <typename... Ts>
Device common_device(const char* op, const Ts*... ts) {
  Device d = Device::CPU;
  bool first = true;
  auto visit = [&](const Tensor* t) {
    if (!t || !t->defined()) return;
    if (first) {
      d = t->device();
      first = false;
    } else if (t->device() != d) {
      fail(op, ": tensors on different devices (", device_name(d), " and ", device_name(t->device()), ")");
    }
  };
  (visit(ts), ...);
  return d;
}

inline void require_cpu(Device d, const char* op) {
  if (d != Device::CPU) fail(op, ": no ", device_name(d), " kernel in this build");
}

template <typename T>
T* ptr_or_null(Tensor* t) {
  return t && t->defined() ? t->data<T>() : nullptr;
}
template <typename T>
const T* ptr_or_null(const Tensor* t) {
  return t && t->defined() ? t->data<T>() : nullptr;
}

}  // namespace tv
