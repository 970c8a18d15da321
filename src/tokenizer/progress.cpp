#include "tokenizer/progress.h"

#include <unistd.h>

#include <cstdio>

namespace tv::tok {

Progress::Progress(std::string label, uint64_t total, bool enabled, bool bytes)
    : label_(std::move(label)), total_(total), enabled_(enabled), bytes_(bytes), tty_(isatty(2) != 0) {
  start_ = last_ = std::chrono::steady_clock::now();
}

Progress::~Progress() { finish(); }

void Progress::update(uint64_t done, uint64_t count, const char* count_name) {
  done_ = done;
  count_ = count;
  count_name_ = count_name;
  if (!enabled_ || !tty_) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_ < std::chrono::milliseconds(200)) return;
  last_ = now;
  draw(false);
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (enabled_) draw(true);
}

void Progress::draw(bool final) {
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double frac = total_ ? double(done_) / double(total_) : 1.0;
  const int width = 30;
  const int filled = static_cast<int>(frac * width + 0.5);
  char bar[width + 1];
  for (int i = 0; i < width; ++i) bar[i] = i < filled ? '#' : '.';
  bar[width] = 0;
  char amount[64];
  if (bytes_) {
    const double mb = double(done_) / 1e6;
    std::snprintf(amount, sizeof amount, "%.1f MB  %.1f MB/s", mb, secs > 0 ? mb / secs : 0.0);
  } else {
    std::snprintf(amount, sizeof amount, "%llu/%llu", static_cast<unsigned long long>(done_),
                  static_cast<unsigned long long>(total_));
  }
  char extra[96] = "";
  if (count_name_) std::snprintf(extra, sizeof extra, "  %.3fM %s", double(count_) / 1e6, count_name_);
  std::fprintf(stderr, "%s%s [%s] %5.1f%%  %s%s  %.1fs%s", tty_ ? "\r" : "", label_.c_str(), bar, frac * 100.0, amount,
               extra, secs, final || !tty_ ? "\n" : "");
  std::fflush(stderr);
}

}  // namespace tv::tok
