#include "train/dpo_batches.h"

#include <algorithm>
#include <numeric>
#include <sstream>

#include "core/error.h"
#include "core/rng.h"
#include "train/dpo_step.h"
#include "train/image_features.h"

namespace tv {

int64_t dpo_batch_rows(const DpoTokens& tok, const std::vector<int64_t>& pairs, const ConversationFormat& f,
                       std::vector<int32_t>& ids, std::vector<int32_t>& labels) {
  std::vector<int64_t> rows;
  rows.reserve(2 * pairs.size());
  for (int64_t k : pairs) {
    TV_CHECK(k >= 0 && k < tok.pairs(), "DPO pair ", k, " out of range");
    rows.push_back(2 * k);
  }
  for (int64_t k : pairs) rows.push_back(2 * k + 1);
  return instruct_batch(tok.rows, rows, f, false, ids, labels);
}

DpoBatches::DpoBatches(const DpoTokens& tokens, std::vector<std::string> pair_images, const ConversationFormat& f,
                       ImageFeatureSource& features, const DpoBatchOptions& o)
    : tok_(tokens), images_(std::move(pair_images)), f_(f), features_(features), o_(o) {
  TV_CHECK(int64_t(images_.size()) == tok_.pairs(), "DpoBatches: ", images_.size(), " images for ", tok_.pairs(), " pairs");
  TV_CHECK(o_.batch > 0, "DpoBatches: the batch size must be positive");
  start_epoch(0);
}

DpoBatches::~DpoBatches() = default;

int64_t DpoBatches::steps_per_epoch() const {
  const int64_t full = tok_.pairs() / o_.batch;
  return o_.batches_per_epoch > 0 ? std::min(o_.batches_per_epoch, full) : full;
}

std::vector<int64_t> DpoBatches::epoch_order(int64_t e) const {
  const int64_t n = tok_.pairs();
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  if (o_.shuffle) {
    Rng rng(o_.seed + 0x9e3779b97f4a7c15ull * uint64_t(e + 1));
    for (int64_t i = n - 1; i > 0; --i) std::swap(order[size_t(i)], order[rng.below(uint64_t(i + 1))]);
  }
  return order;
}

void DpoBatches::start_epoch(int64_t e) {
  epoch_ = e;
  cursor_ = 0;
  batch_ = 0;
  stream_.reset();
  order_ = epoch_order(e);
}

void DpoBatches::next(DpoBatch& b) {
  const int64_t n = tok_.pairs(), B = o_.batch;
  for (;;) {
    if ((o_.batches_per_epoch > 0 && batch_ >= o_.batches_per_epoch) || cursor_ >= n) {
      if (batch_ == 0)
        fail("not one batch of ", B, " preference pairs with a readable image in a whole pass over the data\n",
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
      b.pairs.clear();
      for (size_t u : used) b.pairs.push_back(order_[size_t(stream_start_ + int64_t(u))]);
      b.features = repeat_pair_features(feats);
      b.B = B;
      b.S = dpo_batch_rows(tok_, b.pairs, f_, b.ids, b.labels);
      ++batch_;
      return;
    }
    cursor_ = n;  // the end of the epoch: drop the partial batch
  }
}

std::string DpoBatches::state() const { return str_cat(epoch_, " ", cursor_, " ", batch_, " ", skipped_); }

void DpoBatches::restore(const std::string& s) {
  std::istringstream in(s);
  int64_t e, c, b, k;
  if (!(in >> e >> c >> b >> k) || e < 0 || c < 0 || c > tok_.pairs() || b < 0 || k < 0)
    fail("--resume: unreadable data position '", s, "'");
  start_epoch(e);
  cursor_ = c;
  batch_ = b;
  skipped_ = k;
}

}  // namespace tv
