#include "tokenizer/trainer.h"

#include <omp.h>

#include <algorithm>
#include <queue>
#include <unordered_map>

#include "core/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/progress.h"

namespace tv::tok {

namespace {

int resolve_threads(int threads) { return threads > 0 ? threads : omp_get_max_threads(); }

inline uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

// A candidate merge in the queue, ordered as HuggingFace's: highest count first, then the smallest
// pair. `pos` lists the words that contained the pair when the entry was made.
struct MergeEntry {
  int64_t count;
  uint64_t pair;
  std::vector<uint32_t> pos;
};
struct MergeLess {
  bool operator()(const MergeEntry& x, const MergeEntry& y) const {
    if (x.count != y.count) return x.count < y.count;
    return x.pair > y.pair;
  }
};

struct Change {
  uint64_t pair;
  int32_t delta;
};

// HuggingFace's Word::merge: replaces each non-overlapping (a, b), left to right, and reports the
// pair count changes in the same order.
void merge_word(std::vector<int32_t>& sym, int32_t a, int32_t b, int32_t repl, std::vector<Change>& changes) {
  const size_t n = sym.size();
  size_t i = 0, out = 0;
  while (i < n) {
    if (i + 1 < n && sym[i] == a && sym[i + 1] == b) {
      if (out > 0) {
        changes.push_back({pair_key(sym[out - 1], a), -1});
        changes.push_back({pair_key(sym[out - 1], repl), 1});
      }
      if (i + 2 < n) {
        changes.push_back({pair_key(b, sym[i + 2]), -1});
        changes.push_back({pair_key(repl, sym[i + 2]), 1});
      }
      sym[out++] = repl;
      i += 2;
    } else {
      sym[out++] = sym[i++];
    }
  }
  sym.resize(out);
}

}  // namespace

void WordCounts::add_sequence(std::string_view seq) {
  gpt2_split(seq, [&](size_t off, size_t len) { map_.get_or_insert(seq.substr(off, len)) += 1; });
}

void WordCounts::merge_from(const WordCounts& other) {
  other.map_.for_each([&](std::string_view w, uint64_t c) { map_.get_or_insert(w) += c; });
}

WordCounts count_words(const std::vector<std::string_view>& sequences, int threads) {
  const int nt = resolve_threads(threads);
  std::vector<WordCounts> local(static_cast<size_t>(nt));
  const auto n = static_cast<int64_t>(sequences.size());
#pragma omp parallel num_threads(nt)
  {
    WordCounts& mine = local[static_cast<size_t>(omp_get_thread_num())];
#pragma omp for schedule(dynamic, 64)
    for (int64_t i = 0; i < n; ++i) mine.add_sequence(sequences[i]);
  }
  for (size_t t = 1; t < local.size(); ++t) local[0].merge_from(local[t]);
  return std::move(local[0]);
}

WordCounts count_words_in_files(const std::vector<std::string>& files, const CorpusOptions& copt,
                                const TrainOptions& opt, CorpusStats* stats) {
  const int nt = resolve_threads(opt.threads);
  CorpusReader reader(files, copt);
  Progress progress("counting words", reader.total_bytes(), opt.progress);
  std::vector<WordCounts> local(static_cast<size_t>(nt));
  std::vector<std::string_view> docs;
  while (reader.next(docs)) {
    const auto n = static_cast<int64_t>(docs.size());
#pragma omp parallel num_threads(nt)
    {
      WordCounts& mine = local[static_cast<size_t>(omp_get_thread_num())];
#pragma omp for schedule(dynamic, 64)
      for (int64_t i = 0; i < n; ++i) mine.add_sequence(docs[i]);
    }
    progress.update(reader.bytes_read(), reader.stats().docs, "sequences");
  }
  progress.finish();
  for (size_t t = 1; t < local.size(); ++t) local[0].merge_from(local[t]);
  if (stats) *stats = reader.stats();
  return std::move(local[0]);
}

Tokenizer train_bpe(const WordCounts& counts, const TrainOptions& opt) {
  std::vector<std::string> id_to_word;
  std::unordered_map<std::string, int32_t> word_to_id;
  auto add = [&](const std::string& s) {
    if (word_to_id.count(s)) return;
    word_to_id.emplace(s, static_cast<int32_t>(id_to_word.size()));
    id_to_word.push_back(s);
  };
  // 1. Special tokens.
  for (const std::string& s : opt.special_tokens) add(s);
  // 2. Alphabet, in code point order of the byte characters.
  bool seen[256] = {};
  if (opt.full_alphabet) {
    std::fill(std::begin(seen), std::end(seen), true);
  } else {
    counts.for_each([&](std::string_view w, uint64_t) {
      for (unsigned char c : w) seen[c] = true;
    });
  }
  std::vector<uint8_t> alphabet;
  for (int b = 0; b < 256; ++b)
    if (seen[b]) alphabet.push_back(static_cast<uint8_t>(b));
  std::sort(alphabet.begin(), alphabet.end(), [](uint8_t x, uint8_t y) { return byte_to_char(x) < byte_to_char(y); });
  for (uint8_t b : alphabet) add(byte_char_utf8(b));
  int32_t byte_id[256];
  for (int b = 0; b < 256; ++b) {
    auto it = word_to_id.find(byte_char_utf8(static_cast<uint8_t>(b)));
    byte_id[b] = it == word_to_id.end() ? -1 : it->second;
  }

  // 3. Words as symbol sequences.
  std::vector<std::vector<int32_t>> words;
  std::vector<int64_t> wcount;
  words.reserve(counts.size());
  wcount.reserve(counts.size());
  counts.for_each([&](std::string_view w, uint64_t c) {
    std::vector<int32_t> sym;
    sym.reserve(w.size());
    for (unsigned char ch : w)
      if (byte_id[ch] >= 0) sym.push_back(byte_id[ch]);
    words.push_back(std::move(sym));
    wcount.push_back(static_cast<int64_t>(c));
  });
  // Word order does not change the result; sorting makes runs reproducible to the bit anyway.
  {
    std::vector<uint32_t> order(words.size());
    for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](uint32_t x, uint32_t y) { return words[x] < words[y]; });
    std::vector<std::vector<int32_t>> w2(words.size());
    std::vector<int64_t> c2(words.size());
    for (size_t i = 0; i < order.size(); ++i) {
      w2[i] = std::move(words[order[i]]);
      c2[i] = wcount[order[i]];
    }
    words.swap(w2);
    wcount.swap(c2);
  }

  // 4. Pair counts and where each pair occurs.
  U64Map<int64_t> pair_counts(1 << 16);
  U64Map<uint32_t> where_index(1 << 16);  // pair -> index into where_lists
  std::vector<std::vector<uint32_t>> where_lists;
  std::vector<uint64_t> where_pairs;
  auto note_where = [&](uint64_t pair, uint32_t w) {
    uint32_t& idx = where_index.get_or_insert(pair, UINT32_MAX);
    if (idx == UINT32_MAX) {
      idx = static_cast<uint32_t>(where_lists.size());
      where_lists.emplace_back();
      where_pairs.push_back(pair);
    }
    auto& lst = where_lists[idx];
    if (lst.empty() || lst.back() != w) lst.push_back(w);
  };
  for (uint32_t w = 0; w < words.size(); ++w) {
    const auto& s = words[w];
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      const uint64_t p = pair_key(s[i], s[i + 1]);
      pair_counts.get_or_insert(p) += wcount[w];
      note_where(p, w);
    }
  }
  std::priority_queue<MergeEntry, std::vector<MergeEntry>, MergeLess> queue;
  auto flush_where = [&]() {
    for (size_t k = 0; k < where_lists.size(); ++k) {
      const int64_t c = *pair_counts.find(where_pairs[k]);
      if (c > 0) queue.push(MergeEntry{c, where_pairs[k], std::move(where_lists[k])});
    }
    where_lists.clear();
    where_pairs.clear();
    where_index = U64Map<uint32_t>(64);
  };
  flush_where();

  // 5. Merges.
  Progress progress("computing merges", opt.vocab_size, opt.progress, /*bytes=*/false);
  std::vector<std::pair<int32_t, int32_t>> merges;
  std::vector<Change> changes;
  const int nt = resolve_threads(opt.threads);
  std::vector<std::vector<Change>> thread_changes(static_cast<size_t>(nt));
  while (id_to_word.size() < opt.vocab_size && !queue.empty()) {
    MergeEntry top = std::move(const_cast<MergeEntry&>(queue.top()));
    queue.pop();
    const int64_t current = *pair_counts.find(top.pair);
    if (top.count != current) {
      top.count = current;
      queue.push(std::move(top));
      continue;
    }
    if (top.count < 1 || static_cast<int64_t>(opt.min_frequency) > top.count) break;
    const auto a = static_cast<int32_t>(top.pair >> 32), b = static_cast<int32_t>(top.pair & 0xFFFFFFFFu);
    const std::string merged = id_to_word[a] + id_to_word[b];
    int32_t new_id;
    if (auto it = word_to_id.find(merged); it != word_to_id.end()) {
      new_id = it->second;
    } else {
      new_id = static_cast<int32_t>(id_to_word.size());
      word_to_id.emplace(merged, new_id);
      id_to_word.push_back(merged);
    }
    merges.emplace_back(a, b);

    // Merge in every word that had the pair; big lists in parallel, changes applied in word order.
    const auto& pos = top.pos;
    auto apply = [&](const std::vector<Change>& ch, uint32_t w) {
      for (const Change& c : ch) {
        pair_counts.get_or_insert(c.pair) += int64_t(c.delta) * wcount[w];
        if (c.delta > 0) note_where(c.pair, w);
      }
    };
    if (pos.size() < 4096 || nt == 1) {
      for (uint32_t w : pos) {
        changes.clear();
        merge_word(words[w], a, b, new_id, changes);
        apply(changes, w);
      }
    } else {
      // Each thread merges a contiguous slice and records (word, change) in order.
      std::vector<std::vector<std::pair<uint32_t, Change>>> slices(static_cast<size_t>(nt));
      const size_t m = pos.size();
#pragma omp parallel num_threads(nt)
      {
        const int t = omp_get_thread_num();
        const size_t lo = m * size_t(t) / size_t(nt), hi = m * size_t(t + 1) / size_t(nt);
        std::vector<Change> ch;
        auto& out = slices[static_cast<size_t>(t)];
        for (size_t k = lo; k < hi; ++k) {
          ch.clear();
          merge_word(words[pos[k]], a, b, new_id, ch);
          for (const Change& c : ch) out.emplace_back(pos[k], c);
        }
      }
      for (const auto& sl : slices)
        for (const auto& [w, c] : sl) {
          pair_counts.get_or_insert(c.pair) += int64_t(c.delta) * wcount[w];
          if (c.delta > 0) note_where(c.pair, w);
        }
    }
    flush_where();
    progress.update(id_to_word.size());
  }
  progress.finish();

  std::vector<std::pair<std::string, std::string>> merge_strings;
  merge_strings.reserve(merges.size());
  for (const auto& [a, b] : merges) merge_strings.emplace_back(id_to_word[a], id_to_word[b]);
  std::vector<AddedToken> added;
  for (const std::string& s : opt.special_tokens) {
    AddedToken t;
    t.content = s;
    t.special = true;
    t.normalized = false;
    added.push_back(t);
  }
  BpeOptions bpe;
  bpe.unk_token = opt.unk_token;
  return Tokenizer::from_vocab_merges(std::move(id_to_word), std::move(merge_strings), added, bpe);
}

}  // namespace tv::tok
