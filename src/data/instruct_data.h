// Instruction-tuning data for phase 3 (docs/spec.md section 7): LLaVA-Instruct JSON as published
// (llava_instruct_150k.json, llava_v1_5_mix665k.json: an array of {id, image, conversations[{from, value}]})
// or JSONL with one such object per line. As the original, only samples whose image names COCO are kept
// by default (`'coco' in image.lower()`); images are looked up as the original does, by file name under
// <images>/train/data, <images>/validation/data, <images>/train2017, <images>/val2017, then <images> itself.
// Samples without an image or whose image is not found are skipped, counted and named, never fatal.
// Parquet in the LLaVA layout as HuggingFace publishes it (a .parquet file, folder or glob; docs/parquet.md)
// goes through the same steps: `conversations` [{from, value}], `image` a struct {bytes, path} (the bytes are
// written once into <images>, named by content, and used as files from then on; the COCO filter reads `path`,
// and an image without a path is kept) or a string looked up as above, and `id` when the file has it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/conversation.h"

namespace tv {

namespace tok {
class Tokenizer;
}

struct InstructSample {
  std::string id;     // the record's "id" (or "<file>:<index>" when it has none; Parquet: the row in its file)
  std::string image;  // the resolved image path
  std::vector<ConversationTurn> turns;
};

struct SkippedSample {
  std::string id, reason;
};

struct InstructSet {
  std::string source;
  std::vector<InstructSample> samples;
  int64_t records = 0;               // records in the file
  int64_t not_coco = 0;              // left out by the COCO-only default (not counted as skipped)
  std::vector<SkippedSample> skipped;  // no image, image not found, no turns
};

struct InstructLoadOptions {
  bool coco_only = true;  // instruct_coco_only; false keeps every sample with an image
};

// The original's lookup of an image named in a record (its file name only) under images_dir; empty when absent.
std::string find_instruct_image(const std::string& images_dir, const std::string& image);

// Reads a LLaVA-Instruct JSON array (.json), JSONL (.jsonl, or a file that does not start with '[') or Parquet.
// Malformed records (not an object, "conversations" not a list of {from, value} strings) are errors naming
// the file and record; a missing "image" or an image not found under images_dir is a skipped sample.
InstructSet load_instruct(const std::string& path, const std::string& images_dir, const InstructLoadOptions& o = {});

// Holds out a seeded `fraction` of the samples (at least one when there are two or more and fraction > 0).
void split_instruct(const InstructSet& all, double fraction, uint64_t seed, InstructSet& train, InstructSet& val);

// Every sample formatted (format_conversation) on `threads` threads. Samples left without a labelled token
// after truncation are dropped and added to `skipped`; `sample` maps each kept row to its index in the set.
struct InstructTokens {
  std::vector<int32_t> ids, labels;
  std::vector<int64_t> offsets;  // row i = [offsets[i], offsets[i+1])
  std::vector<int64_t> sample;   // row -> index into InstructSet::samples
  int64_t truncated = 0;         // rows cut to max_seq_len
  int64_t rows() const { return int64_t(offsets.size()) - 1; }
  int64_t length(int64_t r) const { return offsets[size_t(r) + 1] - offsets[size_t(r)]; }
};
InstructTokens tokenize_instruct(const tok::Tokenizer& tokenizer, const InstructSet& set, const ConversationFormat& f,
                                 std::vector<SkippedSample>& skipped, int threads = 0);

// Rows `rows` as one batch padded to its longest row (or to f.max_seq_len with pad_to_max, as the original):
// ids i32 [n, S] right-padded with pad_id, labels [n, S] with padding ignored. Returns S.
int64_t instruct_batch(const InstructTokens& tok, const std::vector<int64_t>& rows, const ConversationFormat& f,
                       bool pad_to_max, std::vector<int32_t>& ids, std::vector<int32_t>& labels);

// "N samples skipped (k no image, ...): id1 (reason), id2 (reason), ..." with up to `show` names; empty when none.
std::string skipped_report(const std::vector<SkippedSample>& skipped, size_t show = 5);

}  // namespace tv
