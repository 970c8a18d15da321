// Byte-level BPE trainer that reproduces HuggingFace's BpeTrainer: the same word counts, the same
// pair counting, the same choice among equal counts (the smallest pair of ids), the same stop rule
// (vocab_size reached or best count below min_frequency) and the same tokenizer.json.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/bpe.h"
#include "tokenizer/corpus.h"
#include "tokenizer/flat_map.h"

namespace tv::tok {

struct TrainOptions {
  size_t vocab_size = 32000;
  uint64_t min_frequency = 2;
  // Placed first in the vocabulary, in this order, and registered as special added tokens.
  std::vector<std::string> special_tokens = {"<unk>", "<s>", "</s>", "<pad>"};
  std::optional<std::string> unk_token = std::string("<unk>");
  // All 256 byte characters in the initial alphabet (HuggingFace's
  // initial_alphabet=ByteLevel.alphabet()); false keeps only the bytes seen in the corpus.
  bool full_alphabet = true;
  int threads = 0;  // 0: all
  bool progress = false;
};

// Pre-tokenized words and their counts (raw bytes, GPT-2 split), as BpeTrainer.feed builds them.
class WordCounts {
 public:
  // Counts the words of one sequence.
  void add_sequence(std::string_view seq);
  void add_word(std::string_view word, uint64_t count) { map_.get_or_insert(word) += count; }
  void merge_from(const WordCounts& other);
  size_t size() const { return map_.size(); }
  uint64_t count(std::string_view word) const {
    const uint64_t* v = map_.find(word);
    return v ? *v : 0;
  }
  // Calls f(word, count) for every word (unspecified order).
  template <typename F>
  void for_each(F&& f) const {
    map_.for_each(f);
  }

 private:
  StringMap map_{1 << 12};
};

// Sequences -> counts on `threads` threads.
WordCounts count_words(const std::vector<std::string_view>& sequences, int threads);

// Counts the words of files: text files line by line with line endings kept (HuggingFace's
// train(files)), JSONL files record by record.
WordCounts count_words_in_files(const std::vector<std::string>& files, const CorpusOptions& copt,
                                const TrainOptions& opt, CorpusStats* stats = nullptr);

Tokenizer train_bpe(const WordCounts& counts, const TrainOptions& opt);

inline Tokenizer train_bpe(const std::vector<std::string_view>& sequences, const TrainOptions& opt) {
  return train_bpe(count_words(sequences, opt.threads), opt);
}

}  // namespace tv::tok
