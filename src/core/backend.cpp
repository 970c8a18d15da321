#include "core/backend.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>

#include <sys/mman.h>

namespace tv {
namespace {

// A small caching allocator: a training step allocates the same activation and gradient sizes every
// time, and returning large blocks to the OS only to fault them in again costs several percent of a
// step. Freed blocks are kept by size, up to kCacheLimit bytes in all.
constexpr size_t kCacheLimit = size_t(2) << 30;
constexpr size_t kHugePage = size_t(2) << 20, kHugeBlock = size_t(4) << 20;

struct BlockCache {
  std::mutex mu;
  std::multimap<size_t, void*> free_blocks;  // rounded size -> block
  std::map<void*, size_t> sizes;             // every live or cached block -> its rounded size
  size_t cached = 0;
};

BlockCache& cache() {
  static BlockCache* c = new BlockCache;  // never destroyed: tensors may be freed during exit
  return *c;
}

// Size classes: 64-byte steps up to 64 KiB, then eight steps per power of two (at most 12.5% waste),
// so that tensors whose sizes vary a little from step to step (the tokens routed to one expert) reuse
// each other's blocks instead of faulting in fresh pages.
size_t size_class(size_t bytes) {
  size_t n = (std::max<size_t>(bytes, 1) + 63) / 64 * 64;
  if (n <= (size_t(64) << 10)) return n;
  const int top = 63 - __builtin_clzll(n);  // 2^top <= n < 2^(top+1)
  const size_t step = size_t(1) << (top - 3);
  return (n + step - 1) / step * step;
}

void* cpu_alloc(size_t bytes) {
  // 64-byte alignment keeps AVX loads aligned and avoids false sharing between threads.
  const size_t rounded = size_class(bytes);
  BlockCache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    auto it = c.free_blocks.find(rounded);
    if (it != c.free_blocks.end()) {
      void* p = it->second;
      c.free_blocks.erase(it);
      c.cached -= rounded;
      return p;
    }
  }
  // Large blocks on transparent huge pages: the GEMMs walk activations a row at a time, and with 4 KiB
  // pages a wide matrix costs a TLB miss per row.
  const bool huge = rounded >= kHugeBlock;
  void* p = std::aligned_alloc(huge ? kHugePage : 64, huge ? (rounded + kHugePage - 1) / kHugePage * kHugePage : rounded);
  if (!p) fail("out of host memory allocating ", bytes, " bytes");
  if (huge) madvise(p, rounded, MADV_HUGEPAGE);  // advice only: without THP it changes nothing
  std::lock_guard<std::mutex> lock(c.mu);
  c.sizes[p] = rounded;
  return p;
}

void cpu_free(void* p) {
  if (!p) return;
  BlockCache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  size_t rounded = c.sizes.at(p);
  if (c.cached + rounded > kCacheLimit) {
    // Over the limit: release everything cached, then this block.
    for (auto& [size, block] : c.free_blocks) {
      c.sizes.erase(block);
      std::free(block);
    }
    c.free_blocks.clear();
    c.cached = 0;
    c.sizes.erase(p);
    std::free(p);
    return;
  }
  c.free_blocks.emplace(rounded, p);
  c.cached += rounded;
}
// Zeroing gradient and accumulator buffers is a sizeable part of a step; large ones are split across threads.
void cpu_memset_zero(void* p, size_t n) {
  constexpr size_t kPiece = size_t(1) << 20;
  if (n < 4 * kPiece) {
    std::memset(p, 0, n);
    return;
  }
  const int64_t pieces = int64_t((n + kPiece - 1) / kPiece);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < pieces; ++i) {
    const size_t off = size_t(i) * kPiece;
    std::memset(static_cast<char*>(p) + off, 0, std::min(kPiece, n - off));
  }
}
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
