#include "train/image_epochs.h"

#include <algorithm>
#include <numeric>
#include <sstream>

#include "core/error.h"
#include "core/rng.h"
#include "train/image_features.h"

namespace tv {

ImageEpochs::ImageEpochs(std::vector<std::string> images, ImageFeatureSource& features, const ImageEpochOptions& o,
                         Reorder reorder)
    : images_(std::move(images)), features_(features), o_(o), reorder_(std::move(reorder)) {
  TV_CHECK(o_.batch > 0, "the batch size must be positive");
  start_epoch(0);
}

ImageEpochs::~ImageEpochs() = default;

int64_t ImageEpochs::steps_per_epoch() const {
  const int64_t full = size() / o_.batch;
  return o_.batches_per_epoch > 0 ? std::min(o_.batches_per_epoch, full) : full;
}

std::vector<int64_t> ImageEpochs::epoch_order(int64_t e) const {
  const int64_t n = size();
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  if (o_.shuffle) {
    Rng rng(o_.seed + 0x9e3779b97f4a7c15ull * uint64_t(e + 1));
    for (int64_t i = n - 1; i > 0; --i) std::swap(order[size_t(i)], order[rng.below(uint64_t(i + 1))]);
  }
  if (reorder_) reorder_(order);
  return order;
}

void ImageEpochs::start_epoch(int64_t e) {
  epoch_ = e;
  cursor_ = 0;
  batch_ = 0;
  stream_.reset();
  order_ = epoch_order(e);
}

Tensor ImageEpochs::next(std::vector<int64_t>& samples) {
  const int64_t n = size(), B = o_.batch;
  for (;;) {
    if ((o_.batches_per_epoch > 0 && batch_ >= o_.batches_per_epoch) || cursor_ >= n) {
      if (batch_ == 0)
        fail("not one batch of ", B, " ", o_.what, " with a readable image in a whole pass over the data\n",
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
      samples.clear();
      for (size_t u : used) samples.push_back(order_[size_t(stream_start_ + int64_t(u))]);
      ++batch_;
      return feats;
    }
    cursor_ = n;  // the end of the epoch: drop the partial batch
  }
}

std::string ImageEpochs::state() const { return str_cat(epoch_, " ", cursor_, " ", batch_, " ", skipped_); }

void ImageEpochs::restore(const std::string& s) {
  std::istringstream in(s);
  int64_t e, c, b, k;
  if (!(in >> e >> c >> b >> k) || e < 0 || c < 0 || c > size() || b < 0 || k < 0)
    fail("--resume: unreadable data position '", s, "'");
  start_epoch(e);
  cursor_ = c;
  batch_ = b;
  skipped_ = k;
}

}  // namespace tv
