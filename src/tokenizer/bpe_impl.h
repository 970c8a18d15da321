// Internal state of tv::tok::Tokenizer, shared by bpe.cpp (encode/decode) and tokenizer_json.cpp
// (reading and writing tokenizer.json). Not part of the public API.
#pragma once
#include <array>
#include <string>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "tokenizer/bpe.h"

namespace tv::tok {

class WordCache;

// Piece of a TemplateProcessing template: a special token (by key) or the input sequence.
struct TemplatePiece {
  bool is_sequence = false;
  std::string special_key;  // key into TemplateSpecial when !is_sequence
  std::string seq_id = "A";
  uint32_t type_id = 0;
};
struct TemplateSpecial {
  std::string key;
  std::vector<int32_t> ids;
  std::vector<std::string> tokens;
};
enum class PostKind { None, ByteLevel, Template };
struct PostProcessor {
  PostKind kind = PostKind::None;
  // ByteLevel
  bool add_prefix_space = true, trim_offsets = false, use_regex = true;
  // TemplateProcessing
  std::vector<TemplatePiece> single, pair;
  std::vector<TemplateSpecial> specials;  // sorted by key
};

// Merge lookup (a, b) -> rank << 32 | new id. One 8-byte slot per merge holds both ids and the
// rank, so the table of a 32000-token vocabulary is 512 KB and stays in cache during the merge loop.
struct MergeTable {
  static constexpr uint64_t kNone = ~uint64_t(0);
  static constexpr int kIdBits = 21, kRankBits = 22;  // ids < 2^21 - 1, ranks < 2^22

  // entries: (left, right, rank << 32 | new id); pairs must be distinct.
  void build(const std::vector<std::tuple<int32_t, int32_t, uint64_t>>& entries);
  uint64_t find(int32_t a, int32_t b) const {
    const uint64_t key = pack(a, b);
    size_t i = (key * 0x9E3779B97F4A7C15ull) >> shift_;
    while (true) {
      const uint64_t s = slots_[i];
      if (s == 0) return kNone;
      if ((s >> kRankBits) == key) {
        const uint32_t rank = static_cast<uint32_t>(s & ((uint64_t(1) << kRankBits) - 1));
        return (uint64_t(rank) << 32) | uint32_t(new_ids_[rank]);
      }
      i = (i + 1) & mask_;
    }
  }

 private:
  static uint64_t pack(int32_t a, int32_t b) {
    // a + 1 keeps every used slot nonzero; out-of-range ids map to a key no entry has.
    const auto ua = static_cast<uint64_t>(static_cast<uint32_t>(a)), ub = static_cast<uint64_t>(static_cast<uint32_t>(b));
    if (ua >= (uint64_t(1) << kIdBits) - 1 || ub >= (uint64_t(1) << kIdBits)) return (uint64_t(1) << (2 * kIdBits)) - 1;
    return ((ua + 1) << kIdBits) | ub;
  }
  std::vector<uint64_t> slots_{0, 0};
  std::vector<int32_t> new_ids_;  // by rank
  size_t mask_ = 1;
  int shift_ = 63;
};

// Leftmost-longest matcher over a small set of strings (HuggingFace uses Aho-Corasick with the
// same match kind).
struct AddedMatcher {
  std::vector<std::string> patterns;
  std::vector<int32_t> ids;
  std::array<std::vector<uint32_t>, 256> by_first{};  // pattern indices by first byte
  std::array<bool, 256> first{};
  bool empty() const { return patterns.empty(); }
  void build(std::vector<std::pair<std::string, int32_t>> entries);
  // Longest pattern at text[pos], or -1.
  int match_at(std::string_view text, size_t pos) const;
};

struct Tokenizer::Impl {
  // --- model ---
  std::vector<std::string> vocab;  // id -> token (model vocabulary)
  std::vector<uint8_t> present;    // id is in the model vocabulary (holes are possible)
  std::unordered_map<std::string, int32_t> token_id;
  size_t model_size = 0;  // number of model entries
  std::vector<std::pair<int32_t, int32_t>> merges;  // rank order
  MergeTable merge_table;                           // (a, b) -> rank << 32 | new id
  BpeOptions bpe;

  // --- pipeline ---
  PipelineOptions pipe;
  bool has_decoder = true;
  PostProcessor post;

  // --- added vocabulary ---
  std::vector<AddedToken> added;                      // ascending id
  std::unordered_map<std::string, int32_t> added_id;  // content -> id
  std::unordered_set<std::string> special_contents;   // contents of special tokens (only grows)
  AddedMatcher match_raw;   // normalized == false: matched on the input text
  AddedMatcher match_norm;  // normalized == true: matched on the remaining pieces
  bool added_has_flags = false;  // some token uses single_word/lstrip/rstrip

  // --- derived, rebuilt by finalize() ---
  std::array<int32_t, 256> byte_sym{};                // initial symbol of each byte (-1: not in vocab)
  std::array<std::vector<int32_t>, 256> single_byte;  // full encoding of each one-byte word
  bool simple_symbols = true;                         // no prefix/suffix: symbols come from byte_sym
  std::vector<std::string> id_bytes;                  // decoder output for each id
  std::vector<uint8_t> id_special;                    // id is a special added token
  std::vector<uint8_t> id_known;                      // id decodes to something
  uint64_t uid = 0;                                   // identifies this state for the word caches

  void finalize();
  void rebuild_added();
  int32_t add_token(AddedToken t);

  // Encoding pieces (bpe.cpp).
  void encode_text(std::string_view text, std::vector<int32_t>& out) const;
  void encode_plain(std::string_view piece, bool first_of_split, std::vector<int32_t>& out) const;
  void encode_word(std::string_view word, WordCache& cache, std::vector<int32_t>& out) const;
  void bpe_word(std::string_view word, std::vector<int32_t>& out) const;
  void apply_post(std::vector<int32_t>& seq, std::vector<int32_t>& out) const;
  // Splits text into pieces: (id >= 0, token) or (-1, plain range). Appends to `pieces`.
  struct Piece {
    int32_t id;
    size_t off, len;
  };
  void split_added(std::string_view text, std::vector<Piece>& pieces) const;
};

// Installs merges (rank order): a later duplicate of a pair replaces the earlier one, as in
// HuggingFace's merge map. Throws when a merged token is missing from the vocabulary.
void set_merges(Tokenizer::Impl& impl, const std::vector<std::pair<int32_t, int32_t>>& pairs);

}  // namespace tv::tok
