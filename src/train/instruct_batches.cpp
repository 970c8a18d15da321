#include "train/instruct_batches.h"

#include <algorithm>

#include "core/error.h"
#include "train/image_epochs.h"

namespace tv {

namespace {

// With group_by_length, each run of 50 batches of the shuffled order sorted by length, longest first.
ImageEpochs::Reorder length_groups(const InstructTokens& tok, const InstructBatchOptions& o) {
  if (!o.group_by_length) return {};
  const int64_t mega = 50 * o.batch;
  return [&tok, mega](std::vector<int64_t>& order) {
    const int64_t n = int64_t(order.size());
    for (int64_t a = 0; a < n; a += mega) {
      auto first = order.begin() + a, last = order.begin() + std::min(n, a + mega);
      std::stable_sort(first, last, [&](int64_t x, int64_t y) { return tok.length(x) > tok.length(y); });
    }
  };
}

ImageEpochOptions epoch_options(const InstructBatchOptions& o) {
  ImageEpochOptions e;
  e.batch = o.batch;
  e.batches_per_epoch = o.batches_per_epoch;
  e.shuffle = o.shuffle;
  e.seed = o.seed;
  return e;
}

}  // namespace

InstructBatches::InstructBatches(const InstructTokens& tokens, std::vector<std::string> row_images,
                                 const ConversationFormat& f, ImageFeatureSource& features, const InstructBatchOptions& o)
    : tok_(tokens), f_(f), o_(o) {
  TV_CHECK(int64_t(row_images.size()) == tok_.rows(), "InstructBatches: ", row_images.size(), " images for ", tok_.rows(),
           " rows");
  TV_CHECK(o_.batch > 0, "InstructBatches: the batch size must be positive");
  epochs_ = std::make_unique<ImageEpochs>(std::move(row_images), features, epoch_options(o_), length_groups(tok_, o_));
}

InstructBatches::~InstructBatches() = default;

int64_t InstructBatches::steps_per_epoch() const { return epochs_->steps_per_epoch(); }
int64_t InstructBatches::skipped() const { return epochs_->skipped(); }
int64_t InstructBatches::epoch() const { return epochs_->epoch(); }
std::vector<int64_t> InstructBatches::epoch_order(int64_t e) const { return epochs_->epoch_order(e); }
std::string InstructBatches::state() const { return epochs_->state(); }
void InstructBatches::restore(const std::string& s) { epochs_->restore(s); }

void InstructBatches::next(InstructBatch& b) {
  b.features = epochs_->next(b.rows);
  b.B = o_.batch;
  b.S = instruct_batch(tok_, b.rows, f_, o_.pad_to_max, b.ids, b.labels);
}

}  // namespace tv
