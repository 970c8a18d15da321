// The one dispatch point of src/ops/*.cpp: each op, once its arguments are checked, runs the kernel of
// the backend that owns its tensors' device, for their dtype. Backends are registered in
// src/ops/backends.cpp; each declares which ops and dtypes it runs (kernels/kernel_table.h), and a call
// it does not support fails here with the op, the backend and the dtype named.
#pragma once
#include "core/error.h"
#include "core/tensor.h"
#include "kernels/kernel_table.h"

namespace tv {

// The backend that runs ops on `device` now (a test may stand another in with KernelBackendScope).
const KernelBackend& kernel_backend(Device device);
// Every backend compiled in, the CPU first.
const std::vector<const KernelBackend*>& kernel_backends();
// Fails unless `b` declares `list_op` (a name of core/op_list.h) for `dtype`.
void require_support(const KernelBackend& b, const char* list_op, DType dtype, const char* op);

// Routes `device` to `b` while alive (tests: a stand-in backend), then back to what it was.
struct KernelBackendScope {
  KernelBackendScope(Device device, const KernelBackend* b);
  ~KernelBackendScope();
  KernelBackendScope(const KernelBackendScope&) = delete;
  KernelBackendScope& operator=(const KernelBackendScope&) = delete;
  Device device;
  const KernelBackend* saved;
};

template <typename T>
const KernelTable<T>& kernel_table(const KernelBackend& b);
template <>
inline const KernelTable<float>& kernel_table<float>(const KernelBackend& b) { return b.f32; }
template <>
inline const KernelTable<double>& kernel_table<double>(const KernelBackend& b) { return b.f64; }

// The kernels of `device` for T, after checking that its backend runs `list_op` in that dtype.
template <typename T>
const KernelTable<T>& kernels(Device device, const char* list_op, const char* op) {
  const KernelBackend& b = kernel_backend(device);
  require_support(b, list_op, std::is_same_v<T, float> ? DType::F32 : DType::F64, op);
  return kernel_table<T>(b);
}

// The bf16 kernels of `device` (fp32 tensors with bf16 products), after checking `list_op` in f32.
const Bf16Kernels& bf16_kernels(Device device, const char* list_op, const char* op);

template <typename Fn>
Fn checked_kernel(Fn fn, const char* kernel, const char* op, Device device) {
  if (!fn) fail(op, ": the ", kernel_backend(device).name, " backend declares this op but has no ", kernel, " kernel");
  return fn;
}

// Every tensor of the call on `expected` (checked after the first group of arguments fixed it).
inline void same_device(const char* op, Device expected, Device d) {
  if (d != expected) fail(op, ": tensors on different devices (", device_name(expected), " and ", device_name(d), ")");
}

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

template <typename T>
T* ptr_or_null(Tensor* t) {
  return t && t->defined() ? t->data<T>() : nullptr;
}
template <typename T>
const T* ptr_or_null(const Tensor* t) {
  return t && t->defined() ? t->data<T>() : nullptr;
}

}  // namespace tv

// Runs the statement list with `T` bound to float or double according to `dtype` and `KT` the kernel
// table of `device`'s backend for T (which must declare `list_op`, a name of core/op_list.h, for it).
#define TV_DISPATCH(device, list_op, dtype, opname, ...)                                       \
  switch (dtype) {                                                                             \
    case ::tv::DType::F32: {                                                                   \
      using T = float;                                                                         \
      [[maybe_unused]] const ::tv::KernelTable<T>& KT = ::tv::kernels<T>(device, list_op, opname); \
      __VA_ARGS__;                                                                             \
      break;                                                                                   \
    }                                                                                          \
    case ::tv::DType::F64: {                                                                   \
      using T = double;                                                                        \
      [[maybe_unused]] const ::tv::KernelTable<T>& KT = ::tv::kernels<T>(device, list_op, opname); \
      __VA_ARGS__;                                                                             \
      break;                                                                                   \
    }                                                                                          \
    default:                                                                                   \
      ::tv::fail(opname, ": unsupported dtype ", ::tv::dtype_name(dtype), " (f32 or f64)");     \
  }

// The kernel `name` of table K (inside TV_DISPATCH, where `dev` and `op` are the call's device and name).
#define TV_KERNEL(K, name) ::tv::checked_kernel((K).name, #name, op, dev)
