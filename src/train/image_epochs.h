// The epoch walk that every dataset of image + text samples shares (instruct_batches.h, dpo_batches.h):
// each epoch a shuffled order of the samples (optionally reordered, e.g. grouped by length), a cursor into
// it, and a stream of the samples' image features. A batch is the next B samples of the order whose image
// could be read (unreadable images are skipped, counted and named by the feature source); the partial batch
// at the end of an epoch is dropped, as the original's loaders do (drop_last). state() and restore() hold
// the position for --resume.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace tv {

class ImageFeatureSource;
class ImageFeatureStream;

struct ImageEpochOptions {
  int64_t batch = 8;
  int64_t batches_per_epoch = -1;  // -1: the whole epoch
  bool shuffle = true;
  uint64_t seed = 313;
  std::string what = "samples";  // how errors name the samples ("preference pairs")
};

class ImageEpochs {
 public:
  // Applied to each epoch's (shuffled) order before it is walked.
  using Reorder = std::function<void(std::vector<int64_t>& order)>;
  // images[i] is the image of sample i. The feature source must outlive this object.
  ImageEpochs(std::vector<std::string> images, ImageFeatureSource& features, const ImageEpochOptions& o,
              Reorder reorder = {});
  ~ImageEpochs();

  // The next batch: its B samples (indices, in row order) into `samples`; returns their features [B, ...].
  Tensor next(std::vector<int64_t>& samples);
  std::string state() const;  // epoch, cursor, batch, skipped
  void restore(const std::string& s);

  int64_t steps_per_epoch() const;
  int64_t skipped() const { return skipped_; }  // samples passed over for an unreadable image
  int64_t epoch() const { return epoch_; }
  std::vector<int64_t> epoch_order(int64_t epoch) const;

 private:
  void start_epoch(int64_t e);
  int64_t size() const { return int64_t(images_.size()); }

  std::vector<std::string> images_;
  ImageFeatureSource& features_;
  ImageEpochOptions o_;
  Reorder reorder_;
  int64_t epoch_ = 0, cursor_ = 0, batch_ = 0, skipped_ = 0;
  std::vector<int64_t> order_;
  std::unique_ptr<ImageFeatureStream> stream_;
  int64_t stream_start_ = 0;
};

}  // namespace tv
