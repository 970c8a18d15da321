// Byte-level BPE tokenizer that reads and writes HuggingFace's tokenizer.json and encodes exactly as
// HuggingFace `tokenizers` does (added tokens split out first, GPT-2 split pattern, byte-to-unicode
// mapping, merges by rank), with a per-thread word cache.
//
// Supported tokenizer.json content (anything else is rejected with an error naming the field):
//   model: BPE (vocab; merges as "a b" strings or ["a", "b"] pairs; unk_token, fuse_unk,
//          byte_fallback, ignore_merges, continuing_subword_prefix, end_of_word_suffix; no dropout)
//   pre_tokenizer: ByteLevel      decoder: ByteLevel or null      normalizer: null
//   post_processor: null, ByteLevel or TemplateProcessing         truncation, padding: null
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tv::tok {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
  bool special = true;
};

// Options of the BPE model section.
struct BpeOptions {
  std::optional<std::string> unk_token;
  std::optional<std::string> continuing_subword_prefix;
  std::optional<std::string> end_of_word_suffix;
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;
};

// The ByteLevel sections and post-processor as tinyvlm writes them (the original project's layout).
struct PipelineOptions {
  bool pre_add_prefix_space = false, pre_trim_offsets = true, pre_use_regex = true;
  bool decoder_byte_level = true;
  bool dec_add_prefix_space = true, dec_trim_offsets = true, dec_use_regex = true;
};

class Tokenizer {
 public:
  Tokenizer();
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  Tokenizer(const Tokenizer&);
  Tokenizer& operator=(const Tokenizer&);

  // tokenizer.json <-> Tokenizer. `source` names the input in error messages.
  static Tokenizer load(const std::string& path);
  static Tokenizer from_json(std::string_view json, const std::string& source = "<tokenizer.json>");
  // HuggingFace's own serialization (pretty JSON, 2-space indent, same key order), so a tokenizer
  // saved here is byte-identical to the one `tokenizers` saves for the same content.
  std::string to_json() const;
  void save(const std::string& path) const;

  // A byte-level BPE tokenizer from vocabulary (index = id) and merges in rank order. Added tokens
  // (e.g. special tokens already in the vocabulary) are registered in order, as HuggingFace does
  // after training; the post-processor is ByteLevel(trim_offsets=false) as in the original.
  static Tokenizer from_vocab_merges(std::vector<std::string> vocab,
                                     std::vector<std::pair<std::string, std::string>> merges,
                                     const std::vector<AddedToken>& added, const BpeOptions& bpe,
                                     const PipelineOptions& pipe = {});

  // Encoding as HuggingFace's Tokenizer.encode(text, add_special_tokens). Thread-safe.
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const;
  void encode_into(std::string_view text, std::vector<int32_t>& out, bool add_special_tokens = true) const;
  // Independent texts on `threads` threads (0 = all); result i belongs to texts[i].
  std::vector<std::vector<int32_t>> encode_batch(const std::vector<std::string_view>& texts, int threads = 0,
                                                 bool add_special_tokens = true) const;
  // One long text, split at points where the split pattern is known to break, encoded in parallel.
  // Equal to encode(text).
  std::vector<int32_t> encode_parallel(std::string_view text, int threads = 0, bool add_special_tokens = true) const;

  // Decoding as HuggingFace's Tokenizer.decode: unknown ids are dropped, special tokens skipped
  // when asked, and the ByteLevel decoder's bytes read as UTF-8 with U+FFFD for ill-formed parts.
  std::string decode(const int32_t* ids, size_t n, bool skip_special_tokens = true) const;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = true) const {
    return decode(ids.data(), ids.size(), skip_special_tokens);
  }

  int32_t token_to_id(std::string_view token) const;  // -1 when absent
  std::string id_to_token(int32_t id) const;          // "" when absent
  bool is_special(int32_t id) const;
  // HuggingFace's get_vocab_size(with_added_tokens=True): distinct tokens of model and added vocab.
  size_t vocab_size() const;
  size_t model_vocab_size() const;
  // One past the largest id in use: the width a token store needs.
  int32_t id_bound() const;
  const std::vector<AddedToken>& added_tokens() const;
  const BpeOptions& bpe_options() const;
  size_t num_merges() const;

  // As HuggingFace's add_special_tokens([content]): the existing id when the token is known,
  // otherwise the next free id. Returns the id.
  int32_t add_special_token(const std::string& content);
  int32_t add_token(AddedToken token);

  // Drops this thread's word cache (benchmarks use it to measure cold runs).
  void clear_cache() const;

  struct Impl;

 private:
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tv::tok
