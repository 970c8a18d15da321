#include "train/instruct_batches.h"

#include <algorithm>
#include <numeric>
#include <sstream>

#include "core/error.h"
#include "core/rng.h"
#include "train/image_features.h"

namespace tv {

InstructBatches::InstructBatches(const InstructTokens& tokens, std::vector<std::string> row_images,
                                 const ConversationFormat& f, ImageFeatureSource& features, const InstructBatchOptions& o)
    : tok_(tokens), images_(std::move(row_images)), f_(f), features_(features), o_(o) {
  TV_CHECK(int64_t(images_.size()) == tok_.rows(), "InstructBatches: ", images_.size(), " images for ", tok_.rows(), " rows");
  TV_CHECK(o_.batch > 0, "InstructBatches: the batch size must be positive");
  start_epoch(0);
}

InstructBatches::~InstructBatches() = default;

int64_t InstructBatches::steps_per_epoch() const {
  const int64_t full = tok_.rows() / o_.batch;
  return o_.batches_per_epoch > 0 ? std::min(o_.batches_per_epoch, full) : full;
}

std::vector<int64_t> InstructBatches::epoch_order(int64_t e) const {
  const int64_t n = tok_.rows();
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  if (o_.shuffle) {
    Rng rng(o_.seed + 0x9e3779b97f4a7c15ull * uint64_t(e + 1));
    for (int64_t i = n - 1; i > 0; --i) std::swap(order[size_t(i)], order[rng.below(uint64_t(i + 1))]);
  }
  if (o_.group_by_length) {
    const int64_t mega = 50 * o_.batch;
    for (int64_t a = 0; a < n; a += mega) {
      auto first = order.begin() + a, last = order.begin() + std::min(n, a + mega);
      std::stable_sort(first, last, [&](int64_t x, int64_t y) { return tok_.length(x) > tok_.length(y); });
    }
  }
  return order;
}

void InstructBatches::start_epoch(int64_t e) {
  epoch_ = e;
  cursor_ = 0;
  batch_ = 0;
  stream_.reset();
  order_ = epoch_order(e);
}

void InstructBatches::next(InstructBatch& b) {
  const int64_t n = tok_.rows(), B = o_.batch;
  for (;;) {
    if ((o_.batches_per_epoch > 0 && batch_ >= o_.batches_per_epoch) || cursor_ >= n) {
      if (batch_ == 0)
        fail("not one batch of ", B, " samples with a readable image in a whole pass over the data\n",
             features_.bad_report());
      start_epoch(epoch_ + 1);
    }
    if (!stream_) {
      std::vector<std::string> plan;
      plan.reserve(size_t(n - cursor_));
      for (int64_t i = cursor_; i < n; ++i) plan.push_back(images_[size_t(order_[size_t(i)])]);
      stream_ = std::make_unique<ImageFeatureStream>(features_, std::move(plan));
      stream_start_ = cursor_;
    }
    std::vector<size_t> used;
    int64_t skipped = 0;
    Tensor feats = stream_->take(B, used, &skipped);
    skipped_ += skipped;
    cursor_ = stream_start_ + int64_t(stream_->position());
    if (int64_t(used.size()) == B) {
      b.rows.clear();
      for (size_t u : used) b.rows.push_back(order_[size_t(stream_start_ + int64_t(u))]);
      b.features = feats;
      b.B = B;
      b.S = instruct_batch(tok_, b.rows, f_, o_.pad_to_max, b.ids, b.labels);
      ++batch_;
      return;
    }
    cursor_ = n;  // the end of the epoch: drop the partial batch
  }
}

std::string InstructBatches::state() const { return str_cat(epoch_, " ", cursor_, " ", batch_, " ", skipped_); }

void InstructBatches::restore(const std::string& s) {
  std::istringstream in(s);
  int64_t e, c, b, k;
  if (!(in >> e >> c >> b >> k) || e < 0 || c < 0 || c > tok_.rows() || b < 0 || k < 0)
    fail("--resume: unreadable data position '", s, "'");
  start_epoch(e);
  cursor_ = c;
  batch_ = b;
  skipped_ = k;
}

}  // namespace tv
