// Op profiler: wall time and calls per op, as the model calls them. An op called by another op
// (linear_fwd -> matmul, grad_norm -> sum_squares) is part of its caller's time, not an entry of its
// own. Off by default; when off a scope costs one relaxed load. `tinyvlm bench train --profile`
// prints the table. Ops are called from one thread (their kernels parallelise inside).
#pragma once
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace tv::profile {

extern std::atomic<bool> g_enabled;

void enable(bool on);
void reset();

struct Entry {
  std::string name;
  int64_t calls = 0;
  double seconds = 0;
};
std::vector<Entry> entries();  // longest first

class Scope {
 public:
  explicit Scope(const char* name) {
    if (g_enabled.load(std::memory_order_relaxed)) begin(name);
  }
  ~Scope() {
    if (active_) end();
  }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  void begin(const char* name);
  void end();
  bool active_ = false;
  const char* name_ = nullptr;
  int64_t start_ns_ = 0;
};

}  // namespace tv::profile

#define TV_PROFILE_CAT2(a, b) a##b
#define TV_PROFILE_CAT(a, b) TV_PROFILE_CAT2(a, b)
#define TV_PROFILE(name) ::tv::profile::Scope TV_PROFILE_CAT(tv_profile_scope_, __LINE__)(name)
