#include "core/profile.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>

namespace tv::profile {

std::atomic<bool> g_enabled{false};

namespace {

struct Totals {
  std::mutex mu;
  std::map<std::string, Entry> by_name;
};
Totals& totals() {
  static Totals* t = new Totals;  // never destroyed: scopes may close during exit
  return *t;
}
thread_local bool t_inside = false;  // an outer op is being timed

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void enable(bool on) { g_enabled.store(on, std::memory_order_relaxed); }

void reset() {
  Totals& t = totals();
  std::lock_guard<std::mutex> lock(t.mu);
  t.by_name.clear();
}

std::vector<Entry> entries() {
  Totals& t = totals();
  std::vector<Entry> out;
  {
    std::lock_guard<std::mutex> lock(t.mu);
    for (const auto& [name, e] : t.by_name) out.push_back(e);
  }
  std::sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) { return a.seconds > b.seconds; });
  return out;
}

void Scope::begin(const char* name) {
  if (t_inside) return;
  t_inside = active_ = true;
  name_ = name;
  start_ns_ = now_ns();
}

void Scope::end() {
  const int64_t total = now_ns() - start_ns_;
  t_inside = false;
  Totals& t = totals();
  std::lock_guard<std::mutex> lock(t.mu);
  Entry& e = t.by_name[name_];
  e.name = name_;
  e.calls += 1;
  e.seconds += double(total) * 1e-9;
}

}  // namespace tv::profile
