// Batches of preference pairs (phase 4) through the one batch interface every dataset has: next(), state(),
// restore(). A batch is the next B pairs of the epoch's order whose image could be read (unreadable images
// are skipped, counted and named by the feature source); the partial batch at the end of an epoch is
// dropped, as the original's loader does (drop_last). The 2B sequences (the B chosen ones, then the B
// rejected ones) are padded to the longest of them: padding sits after every labelled token and attention
// is causal, so the log-probabilities are those of the original's padding to dpo_max_seq_len.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "data/dpo_data.h"

namespace tv {

class ImageFeatureSource;
class ImageEpochs;

struct DpoBatch {
  Tensor features;                   // [2B, P, hidden]: each pair's tower features (computed once) for both rows
  std::vector<int32_t> ids, labels;  // [2B, S]
  std::vector<int64_t> pairs;        // the kept pairs (indices into DpoTokens) of the batch, in row order
  int64_t B = 0, S = 0;
};

// Rows of kept pairs `pairs` as one batch: chosen rows then rejected rows, padded to the longest. Returns S.
int64_t dpo_batch_rows(const DpoTokens& tok, const std::vector<int64_t>& pairs, const ConversationFormat& f,
                       std::vector<int32_t>& ids, std::vector<int32_t>& labels);

struct DpoBatchOptions {
  int64_t batch = 4;
  int64_t batches_per_epoch = -1;  // -1: the whole epoch
  bool shuffle = true;
  uint64_t seed = 313;
};

class DpoBatches {
 public:
  // pair_images[k] is the image of kept pair k. The referenced objects must outlive this one.
  DpoBatches(const DpoTokens& tokens, std::vector<std::string> pair_images, const ConversationFormat& f,
             ImageFeatureSource& features, const DpoBatchOptions& o);
  ~DpoBatches();

  void next(DpoBatch& b);
  std::string state() const;  // epoch, cursor, batch, skipped
  void restore(const std::string& s);

  int64_t steps_per_epoch() const;
  int64_t skipped() const;
  std::vector<int64_t> epoch_order(int64_t epoch) const;

 private:
  const DpoTokens& tok_;
  ConversationFormat f_;
  DpoBatchOptions o_;
  std::unique_ptr<ImageEpochs> epochs_;
};

}  // namespace tv
