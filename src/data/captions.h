// Image-caption data for phase 2 (docs/spec.md section 7): COCO's own caption annotations
// (captions_*.json: images[].{id, file_name}, annotations[].{image_id, caption}) or JSONL lines
// {"image": path, "caption": text} (caption may also be a list of texts), and the phase-2 formatting:
// ids = encode("<image> " + caption) cut to max_seq_len - 1, + EOS, right-padded with <pad>.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace tv {

namespace tok {
class Tokenizer;
}

struct CaptionSet {
  struct Sample {
    int32_t image = 0;  // index into images
    std::string caption;
  };
  std::vector<std::string> images;  // image file paths (relative paths already resolved)
  std::vector<Sample> samples;      // in file order
  std::string source;
};

// Reads a COCO captions JSON (.json) or a JSONL file (.jsonl, or any file whose first line is a JSON object
// with "image"). Relative image paths are resolved against images_dir (for JSONL, when images_dir is empty,
// against the JSONL file's folder). Errors name the file (and line) and what was expected.
// Parquet data (a .parquet file, a folder or a glob of them; see data/parquet_captions.h) take the image and
// caption column names (empty: found from the file) and extract their images to images_dir.
CaptionSet load_captions(const std::string& path, const std::string& images_dir, const std::string& image_column = "",
                         const std::string& caption_column = "");

// Holds out the last `fraction` of the images (by first appearance; at least one image when there are two or
// more and fraction > 0) with all their captions, so no image is in both sets.
void split_by_image(const CaptionSet& all, double fraction, CaptionSet& train, CaptionSet& val);

// The token ids of the phase-2 sequence layout.
struct CaptionFormat {
  int32_t image_id = 32000, eos_id = 2, pad_id = 3;
  int64_t max_seq_len = 64;
  bool tokenizer_has_image = false;  // encode "<image> " + caption whole, else [image_id] + encode(" " + caption)
};

// Reads <image>, </s> and <pad> from the tokenizer. `<image>` must be the id right after the text vocabulary
// (vocab_size); a tokenizer without it gets it implicitly (same ids: added tokens are split out first).
// The tokenizer's other ids must lie below vocab_size. <pad> falls back to 0 when absent, as the original does.
CaptionFormat caption_format(const tok::Tokenizer& tokenizer, int64_t vocab_size, int64_t max_seq_len,
                             const std::string& tokenizer_name);

// One caption: encode("<image> " + caption), truncated to max_seq_len - 1, then EOS (unpadded: at most
// max_seq_len ids).
std::vector<int32_t> format_caption(const tok::Tokenizer& tokenizer, const std::string& caption, const CaptionFormat& f);

// Every sample's ids (unpadded), tokenized on `threads` threads; row i = samples[i].
struct CaptionTokens {
  std::vector<int32_t> ids;
  std::vector<int64_t> offsets;  // row i = ids[offsets[i], offsets[i+1])
  int64_t rows() const { return int64_t(offsets.size()) - 1; }
};
CaptionTokens tokenize_captions(const tok::Tokenizer& tokenizer, const CaptionSet& set, const CaptionFormat& f,
                                int threads = 0);

// Rows `rows` of `tok` as a padded batch: ids i32 [n, max_seq_len] right-padded with pad_id, and labels =
// ids with pad -> kIgnoreIndex and position 0 (the <image> placeholder) -> kIgnoreIndex.
void caption_batch(const CaptionTokens& tok, const std::vector<int64_t>& rows, const CaptionFormat& f,
                   std::vector<int32_t>& ids, std::vector<int32_t>& labels);

}  // namespace tv
