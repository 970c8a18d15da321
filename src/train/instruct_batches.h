// Batches of phase-3 data (and of any labelled image + text rows) through the one batch interface every
// dataset has: next(), state(), restore(). A batch is the next B rows of the epoch's order whose image
// could be read (unreadable images are skipped, counted and named by the feature source); the partial
// batch at the end of an epoch is dropped, as the original's loader does (drop_last). A batch is padded to
// its longest row, not to instruct_max_seq_len: padding sits after every labelled token and attention is
// causal, so the loss is the same. With group_by_length, each run of 50 batches of the shuffled order is
// sorted by length first, so that rows of a batch have similar lengths (less padding).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "data/instruct_data.h"

namespace tv {

class ImageFeatureSource;
class ImageEpochs;

struct InstructBatch {
  Tensor features;                   // [B, P, hidden]
  std::vector<int32_t> ids, labels;  // [B, S]
  std::vector<int64_t> rows;         // the token rows used
  int64_t B = 0, S = 0;
};

struct InstructBatchOptions {
  int64_t batch = 8;
  int64_t batches_per_epoch = -1;  // -1: the whole epoch
  bool shuffle = true, group_by_length = false, pad_to_max = false;
  uint64_t seed = 313;
};

class InstructBatches {
 public:
  // row_images[r] is the image of token row r. The referenced objects must outlive this one.
  InstructBatches(const InstructTokens& tokens, std::vector<std::string> row_images, const ConversationFormat& f,
                  ImageFeatureSource& features, const InstructBatchOptions& o);
  ~InstructBatches();

  void next(InstructBatch& b);
  std::string state() const;  // epoch, cursor, batch, skipped
  void restore(const std::string& s);

  int64_t steps_per_epoch() const;
  int64_t skipped() const;  // rows passed over for an unreadable image
  int64_t epoch() const;
  // The order of an epoch (exposed for tests).
  std::vector<int64_t> epoch_order(int64_t epoch) const;

 private:
  const InstructTokens& tok_;
  ConversationFormat f_;
  InstructBatchOptions o_;
  std::unique_ptr<ImageEpochs> epochs_;
};

}  // namespace tv
