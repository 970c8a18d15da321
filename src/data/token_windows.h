// Phase-1 batches (docs/spec.md section 7): the token stream cut into windows of max_seq_len + 1 tokens
// with stride max_seq_len; input = the first S tokens, target = the last S. The last windows of the
// stream are held out for validation. Training windows are visited in order, or in a seeded shuffled
// order per epoch; the position (and order) is part of the checkpoint so a resumed run continues exactly.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"

namespace tv {

struct TokenStream {
  int64_t size = 0;
  // Copies tokens [start, start + n) into out.
  std::function<void(int64_t start, int64_t n, int32_t* out)> read;
  static TokenStream from_vector(std::vector<int32_t> tokens);
};

class TokenWindows {
 public:
  // val_fraction of the windows (at least one when there are two or more) are held out at the end.
  TokenWindows(TokenStream stream, int64_t seq_len, double val_fraction, bool shuffle, uint64_t seed);

  int64_t train_windows() const { return n_train_; }
  int64_t val_windows() const { return n_val_; }
  int64_t seq_len() const { return S_; }

  // The next B training windows as ids/targets i32 [B, S]; wraps around into a new epoch.
  void next_train(int64_t B, Tensor& ids, Tensor& targets);
  // Validation windows [first, first + B) (clamped to the split) as ids/targets; returns how many.
  int64_t val_batch(int64_t first, int64_t B, Tensor& ids, Tensor& targets) const;

  std::string state() const;  // epoch, cursor, RNG
  void restore(const std::string& s);
  int64_t epoch() const { return epoch_; }

 private:
  void read_window(int64_t w, int32_t* ids, int32_t* targets) const;
  void start_epoch();

  TokenStream stream_;
  int64_t S_, n_train_ = 0, n_val_ = 0;
  bool shuffle_;
  Rng rng_;
  std::vector<int64_t> order_;
  int64_t epoch_ = 0, cursor_ = 0;
  Rng epoch_rng_start_;  // RNG state at the start of the current epoch (to rebuild the order on restore)
};

}  // namespace tv
