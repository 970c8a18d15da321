#include "data/token_windows.h"

#include <algorithm>
#include <memory>
#include <sstream>

#include "core/error.h"

namespace tv {

TokenStream TokenStream::from_vector(std::vector<int32_t> tokens) {
  auto data = std::make_shared<std::vector<int32_t>>(std::move(tokens));
  TokenStream s;
  s.size = int64_t(data->size());
  s.read = [data](int64_t start, int64_t n, int32_t* out) { std::copy_n(data->data() + start, n, out); };
  return s;
}

TokenWindows::TokenWindows(TokenStream stream, int64_t seq_len, double val_fraction, bool shuffle, uint64_t seed)
    : stream_(std::move(stream)), S_(seq_len), shuffle_(shuffle), rng_(seed) {
  TV_CHECK(S_ > 0, "sequence length must be positive");
  int64_t n = stream_.size > S_ ? (stream_.size - 1) / S_ : 0;
  if (n == 0)
    fail("the corpus has ", stream_.size, " tokens, fewer than one window of max_seq_len + 1 = ", S_ + 1,
         "; use more text or a smaller max_seq_len");
  n_val_ = n >= 2 ? std::max<int64_t>(val_fraction > 0 ? 1 : 0, int64_t(double(n) * val_fraction)) : 0;
  n_train_ = n - n_val_;
  start_epoch();
}

void TokenWindows::start_epoch() {
  epoch_rng_start_ = rng_;
  order_.resize(n_train_);
  for (int64_t i = 0; i < n_train_; ++i) order_[i] = i;
  if (shuffle_)
    for (int64_t i = n_train_ - 1; i > 0; --i) std::swap(order_[i], order_[rng_.below(uint64_t(i + 1))]);
  cursor_ = 0;
}

void TokenWindows::read_window(int64_t w, int32_t* ids, int32_t* targets) const {
  std::vector<int32_t> buf(S_ + 1);
  stream_.read(w * S_, S_ + 1, buf.data());
  std::copy_n(buf.begin(), S_, ids);
  std::copy_n(buf.begin() + 1, S_, targets);
}

void TokenWindows::next_train(int64_t B, Tensor& ids, Tensor& targets) {
  ids = Tensor::empty({B, S_}, DType::I32);
  targets = Tensor::empty({B, S_}, DType::I32);
  for (int64_t b = 0; b < B; ++b) {
    if (cursor_ >= n_train_) {
      ++epoch_;
      start_epoch();
    }
    read_window(order_[cursor_++], ids.data<int32_t>() + b * S_, targets.data<int32_t>() + b * S_);
  }
}

int64_t TokenWindows::val_batch(int64_t first, int64_t B, Tensor& ids, Tensor& targets) const {
  int64_t n = std::min(B, n_val_ - first);
  if (n <= 0) return 0;
  ids = Tensor::empty({n, S_}, DType::I32);
  targets = Tensor::empty({n, S_}, DType::I32);
  for (int64_t b = 0; b < n; ++b)
    read_window(n_train_ + first + b, ids.data<int32_t>() + b * S_, targets.data<int32_t>() + b * S_);
  return n;
}

std::string TokenWindows::state() const {
  std::ostringstream os;
  os << epoch_ << " " << cursor_;
  for (uint64_t w : epoch_rng_start_.s) os << " " << w;
  return os.str();
}

void TokenWindows::restore(const std::string& s) {
  std::istringstream is(s);
  int64_t epoch, cursor;
  Rng r;
  is >> epoch >> cursor;
  for (uint64_t& w : r.s) is >> w;
  if (!is) fail("corrupt data position '", s, "' in the checkpoint");
  rng_ = r;
  start_epoch();  // rebuilds the epoch's order from its starting RNG state
  epoch_ = epoch;
  cursor_ = cursor;
}

}  // namespace tv
