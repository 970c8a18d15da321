// The registration of every backend: one line per kernels folder. A backend's folder provides a
// function that fills its KernelBackend (kernels/kernel_table.h); nothing else in src/ops names it.
#include <cstring>

#include "core/ops.h"
#include "ops/dispatch.h"

namespace tv {

namespace cpu {
const KernelBackend* kernel_backend();  // src/kernels/cpu/register.cpp
}
#ifdef TINYVLM_CUDA
namespace cuda {
const KernelBackend* kernel_backend();  // src/kernels/cuda/register.cpp
}
#endif

namespace {

struct Registry {
  std::vector<const KernelBackend*> all;
  const KernelBackend* active[2] = {nullptr, nullptr};  // by Device
};

Registry& registry() {
  static Registry r = [] {
    Registry x;
    x.all.push_back(cpu::kernel_backend());
#ifdef TINYVLM_CUDA
    x.all.push_back(cuda::kernel_backend());
#endif
    for (const KernelBackend* b : x.all) x.active[int(b->device)] = b;
    return x;
  }();
  return r;
}

}  // namespace

const KernelBackend& kernel_backend(Device device) {
  const KernelBackend* b = registry().active[int(device)];
  if (!b) fail("no ", device_name(device), " kernels in this build");
  return *b;
}

const std::vector<const KernelBackend*>& kernel_backends() { return registry().all; }

KernelBackendScope::KernelBackendScope(Device d, const KernelBackend* b) : device(d), saved(registry().active[int(d)]) {
  TV_CHECK(b && b->device == d, "KernelBackendScope: a backend for ", device_name(d), " expected");
  registry().active[int(d)] = b;
}
KernelBackendScope::~KernelBackendScope() { registry().active[int(device)] = saved; }

void require_support(const KernelBackend& b, const char* list_op, DType dtype, const char* op) {
  for (const OpSupport& s : b.ops) {
    if (std::strcmp(s.op.c_str(), list_op) != 0) continue;
    const bool ok = dtype == DType::F32 ? s.f32 : dtype == DType::F64 ? s.f64 : false;
    if (!ok) fail(op, ": the ", b.name, " backend does not run ", list_op, " in ", dtype_name(dtype));
    return;
  }
  fail(op, ": the ", b.name, " backend does not declare the op ", list_op);
}

const Bf16Kernels& bf16_kernels(Device device, const char* list_op, const char* op) {
  const KernelBackend& b = kernel_backend(device);
  require_support(b, list_op, DType::F32, op);
  return b.bf16;
}

namespace ops {
bool bf16_matmuls_native(Device device) {
  const KernelBackend& b = kernel_backend(device);
  return b.bf16_native && b.bf16_native();
}
}  // namespace ops

}  // namespace tv
