#include "train/dpo_batches.h"

#include "core/error.h"
#include "train/dpo_step.h"
#include "train/image_epochs.h"

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
    : tok_(tokens), f_(f), o_(o) {
  TV_CHECK(int64_t(pair_images.size()) == tok_.pairs(), "DpoBatches: ", pair_images.size(), " images for ", tok_.pairs(),
           " pairs");
  TV_CHECK(o_.batch > 0, "DpoBatches: the batch size must be positive");
  ImageEpochOptions e;
  e.batch = o_.batch;
  e.batches_per_epoch = o_.batches_per_epoch;
  e.shuffle = o_.shuffle;
  e.seed = o_.seed;
  e.what = "preference pairs";
  epochs_ = std::make_unique<ImageEpochs>(std::move(pair_images), features, e);
}

DpoBatches::~DpoBatches() = default;

int64_t DpoBatches::steps_per_epoch() const { return epochs_->steps_per_epoch(); }
int64_t DpoBatches::skipped() const { return epochs_->skipped(); }
std::vector<int64_t> DpoBatches::epoch_order(int64_t e) const { return epochs_->epoch_order(e); }
std::string DpoBatches::state() const { return epochs_->state(); }
void DpoBatches::restore(const std::string& s) { epochs_->restore(s); }

void DpoBatches::next(DpoBatch& b) {
  // Each pair's features once, for its chosen and its rejected row.
  b.features = repeat_pair_features(epochs_->next(b.pairs));
  b.B = o_.batch;
  b.S = dpo_batch_rows(tok_, b.pairs, f_, b.ids, b.labels);
}

}  // namespace tv
