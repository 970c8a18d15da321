// Preference pairs for phase 4, DPO (docs/spec.md section 7): an image, a question, a chosen and a rejected
// answer. Read from
//   - JSONL rows of HuggingFaceH4/rlaif-v_formatted as HuggingFace publishes them: `prompt`, `chosen` and
//     `rejected` as message lists [{role, content: [{type: "image" | "text", text}]}] (content may also be a
//     plain string) and `images` (a list; the first is used) or `image`; an image is a path, a data URL
//     (data:image/png;base64,...) or an object {bytes: base64, path};
//   - plain JSONL {"image", "question", "chosen", "rejected"} (and an optional "id");
//   - Parquet in the rlaif-v_formatted layout (a .parquet file, folder or glob): the same fields, images as
//     structs {bytes, path}.
// As the original's dataset: the question is the first text part of the first prompt message, each answer
// the first content part of the first message of `chosen` / `rejected`. Images inside the data are written
// once into the image folder, named by content, and used as files from then on (decoding, the feature
// cache and the skipping of corrupt images then work as for image folders). A pair without an image, with
// an image that is not found or whose embedded bytes are not valid base64 is skipped, counted and named;
// malformed rows are errors naming the file and line (or Parquet row).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "data/conversation.h"
#include "data/instruct_data.h"

namespace tv {

namespace tok {
class Tokenizer;
}

struct DpoPair {
  std::string id;     // the row's "id", else "<file>:<line>" (Parquet: "<file>:<row>")
  std::string image;  // the resolved image path
  std::string question, chosen, rejected;
};

struct DpoSet {
  std::string source;
  std::vector<DpoPair> pairs;
  int64_t records = 0;
  std::vector<SkippedSample> skipped;  // no image, image not found, invalid embedded image
};

// One JSON row, parsed without touching the file system (the fuzz harness drives it). The image is
// either a name/path (image_path) or embedded bytes (image_bytes, decoded from base64); neither when
// the row has none. image_error is set when the embedded image is not valid base64.
struct DpoRecord {
  DpoPair pair;
  std::string image_path, image_bytes, image_error;
};
// Errors name `where` (file:line) and what was expected.
DpoRecord parse_dpo_json_line(std::string_view line, const std::string& where, const std::string& fallback_id);

// Reads JSONL (either layout, row by row) or Parquet. images_dir: where relative image paths are looked up
// (then beside the data file, then by file name as the phase-3 loader does), and where embedded images are
// written ("tinyvlm_images" beside the data file when empty).
DpoSet load_dpo(const std::string& path, const std::string& images_dir);

// Holds out a seeded `fraction` of the pairs (at least one when there are two or more and fraction > 0).
void split_dpo(const DpoSet& all, double fraction, uint64_t seed, DpoSet& train, DpoSet& val);

// Every pair as the original builds it: prompt = [<image>] + encode(" USER: " + question + " ASSISTANT:"),
// response = encode(" " + answer); the sequence prompt + response is cut to max_seq_len - 1, then EOS is
// appended; labels are the response tokens and the EOS, the prompt is ignored. A pair whose chosen or
// rejected response is left empty by the cut is skipped (added to `skipped`). Row 2k is the chosen and
// row 2k + 1 the rejected sequence of kept pair k; rows.sample[2k] = rows.sample[2k + 1] = the pair's
// index in the set.
struct DpoTokens {
  InstructTokens rows;
  int64_t pairs() const { return rows.rows() / 2; }
  int64_t pair_index(int64_t k) const { return rows.sample[size_t(2 * k)]; }
};
DpoTokens tokenize_dpo(const tok::Tokenizer& tokenizer, const DpoSet& set, const ConversationFormat& f,
                       std::vector<SkippedSample>& skipped, int threads = 0);

// Decodes standard base64 (whitespace ignored, padding optional); false on any other byte.
bool decode_base64_lenient(std::string_view in, std::string& out);

}  // namespace tv
