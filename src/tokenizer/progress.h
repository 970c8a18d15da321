// A one-line progress bar on stderr (redrawn in place on a terminal, a final line otherwise).
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace tv::tok {

class Progress {
 public:
  // total: units of work; bytes: the units are bytes (shown as MB and MB/s), else plain counts.
  Progress(std::string label, uint64_t total, bool enabled, bool bytes = true);
  ~Progress();
  // Sets the work done so far and an auxiliary count shown beside it. Cheap to call often.
  void update(uint64_t done, uint64_t count = 0, const char* count_name = nullptr);
  void finish();

 private:
  void draw(bool final);
  std::string label_;
  uint64_t total_, done_ = 0, count_ = 0;
  const char* count_name_ = nullptr;
  bool enabled_, bytes_, tty_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace tv::tok
