#include "core/backend.h"

#include <cstdlib>
#include <cstring>
#include <new>

namespace tv {
namespace {

void* cpu_alloc(size_t bytes) {
  if (bytes == 0) bytes = 64;
  // 64-byte alignment keeps AVX loads aligned and avoids false sharing between threads.
  void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (!p) fail("out of host memory allocating ", bytes, " bytes");
  return p;
}
void cpu_free(void* p) { std::free(p); }
void cpu_memset_zero(void* p, size_t n) { std::memset(p, 0, n); }
void cpu_copy(void* dst, const void* src, size_t n) { if (n) std::memcpy(dst, src, n); }
void cpu_sync() {}

const Backend kCpuBackend{"cpu", cpu_alloc, cpu_free, cpu_memset_zero, cpu_copy, cpu_copy, cpu_copy, cpu_sync};
const Backend* g_backends[2] = {&kCpuBackend, nullptr};

}  // namespace

const Backend& backend(Device device) {
  const Backend* b = g_backends[int(device)];
  if (!b) fail("the ", device_name(device), " backend is not available in this build");
  return *b;
}

bool backend_available(Device device) { return g_backends[int(device)] != nullptr; }

void register_backend(Device device, const Backend* b) { g_backends[int(device)] = b; }

}  // namespace tv
