// One backend interface: how a device allocates, clears and copies memory.
// Ops dispatch on Tensor::device() to kernels/cpu or kernels/cuda (see ops/ for the dispatch).
#pragma once
#include <cstddef>

#include "core/tensor.h"

namespace tv {

struct Backend {
  const char* name;
  void* (*alloc)(size_t bytes);
  void (*free)(void* ptr);
  void (*memset_zero)(void* ptr, size_t bytes);
  // Copies between this device and the host (or within the device).
  void (*copy_to_host)(void* host_dst, const void* src, size_t bytes);
  void (*copy_from_host)(void* dst, const void* host_src, size_t bytes);
  void (*copy_device)(void* dst, const void* src, size_t bytes);
  void (*synchronize)();
};

const Backend& backend(Device device);
bool backend_available(Device device);
// Called by the CUDA backend when it is compiled in.
void register_backend(Device device, const Backend* b);

}  // namespace tv
