// Encoding and decoding. The hot path: added-token split -> GPT-2 split -> per-word cache lookup;
// only words never seen by this thread go through the merge loop.
#include "tokenizer/bpe.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <queue>

#include "core/error.h"
#include "tokenizer/bpe_impl.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/unicode.h"
#include "tokenizer/word_cache.h"

namespace tv::tok {

namespace {

std::atomic<uint64_t> g_next_uid{1};

constexpr uint64_t kNoMerge = MergeTable::kNone;

// Per-thread word caches, one per tokenizer state (a few kept, least recently used recycled).
struct ThreadCaches {
  WordCache slots[4];
  uint64_t tick = 0;
  WordCache& get(uint64_t uid) {
    ++tick;
    WordCache* lru = &slots[0];
    for (WordCache& c : slots) {
      if (c.owner == uid) {
        c.last_use = tick;
        return c;
      }
      if (c.last_use < lru->last_use) lru = &c;
    }
    lru->reset(uid);
    lru->last_use = tick;
    return *lru;
  }
};

thread_local ThreadCaches tl_caches;


int resolve_threads(int threads) { return threads > 0 ? threads : omp_get_max_threads(); }

// Last / first code point of a string (for the \w checks of single_word tokens).
uint32_t last_cp(std::string_view s) {
  size_t i = s.size();
  while (i > 0 && (static_cast<unsigned char>(s[i - 1]) & 0xC0) == 0x80 && s.size() - i < 3) --i;
  if (i > 0) --i;
  int len;
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  return decode_utf8(p + i, p + s.size(), &len);
}
uint32_t first_cp(std::string_view s) {
  int len;
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  return decode_utf8(p, p + s.size(), &len);
}

// Start of the trailing White_Space run of s (regex \s*$).
size_t trailing_space_start(std::string_view s) {
  size_t i = s.size();
  while (i > 0) {
    size_t j = i - 1;
    while (j > 0 && (static_cast<unsigned char>(s[j]) & 0xC0) == 0x80) --j;
    int len;
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const uint32_t cp = decode_utf8(p + j, p + s.size(), &len);
    if (cp == kInvalidCp || !is_white_space(cp)) break;
    i = j;
  }
  return i;
}
// Length of the leading White_Space run of s (regex ^\s*).
size_t leading_space_len(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  const auto* q = p;
  while (q < end) {
    int len;
    const uint32_t cp = decode_utf8(q, end, &len);
    if (cp == kInvalidCp || !is_white_space(cp)) break;
    q += len;
  }
  return size_t(q - p);
}

}  // namespace

// ---------------------------------------------------------------- added-token matcher

void AddedMatcher::build(std::vector<std::pair<std::string, int32_t>> entries) {
  patterns.clear();
  ids.clear();
  for (auto& v : by_first) v.clear();
  first.fill(false);
  for (auto& [s, id] : entries) {
    if (s.empty()) continue;
    const auto b = static_cast<unsigned char>(s[0]);
    by_first[b].push_back(static_cast<uint32_t>(patterns.size()));
    first[b] = true;
    patterns.push_back(std::move(s));
    ids.push_back(id);
  }
}

int AddedMatcher::match_at(std::string_view text, size_t pos) const {
  int best = -1;
  size_t best_len = 0;
  for (uint32_t k : by_first[static_cast<unsigned char>(text[pos])]) {
    const std::string& p = patterns[k];
    if (p.size() > best_len && text.size() - pos >= p.size() && std::memcmp(text.data() + pos, p.data(), p.size()) == 0) {
      best = static_cast<int>(k);
      best_len = p.size();
    }
  }
  return best;
}

// ---------------------------------------------------------------- Impl

void Tokenizer::Impl::rebuild_added() {
  std::vector<std::pair<std::string, int32_t>> raw, norm;
  added_has_flags = false;
  for (const AddedToken& t : added) {
    (t.normalized ? norm : raw).emplace_back(t.content, t.id);
    if (t.single_word || t.lstrip || t.rstrip) added_has_flags = true;
  }
  match_raw.build(std::move(raw));
  match_norm.build(std::move(norm));
}

int32_t Tokenizer::Impl::add_token(AddedToken t) {
  if (t.content.empty()) return -1;
  if (auto it = added_id.find(t.content); it != added_id.end()) {
    for (const AddedToken& a : added)
      if (a.id == it->second && a.content == t.content && a.single_word == t.single_word && a.lstrip == t.lstrip &&
          a.rstrip == t.rstrip && a.normalized == t.normalized && a.special == t.special)
        return a.id;  // identical: nothing to do
  }
  int32_t id = -1;
  if (auto it = added_id.find(t.content); it != added_id.end()) id = it->second;
  else if (auto jt = token_id.find(t.content); jt != token_id.end()) id = jt->second;
  if (id < 0) {
    // HuggingFace: after the largest added id when that is beyond the model, else the model size.
    int32_t max_added = -1;
    for (const AddedToken& a : added) max_added = std::max(max_added, a.id);
    const auto msize = static_cast<int32_t>(model_size);
    id = (max_added < 0) ? msize : ((max_added >= msize || msize == 0) ? max_added + 1 : msize);
  }
  t.id = id;
  added_id[t.content] = id;
  auto pos = std::lower_bound(added.begin(), added.end(), id, [](const AddedToken& a, int32_t v) { return a.id < v; });
  if (pos != added.end() && pos->id == id) {
    // The special-token set only grows in HuggingFace: keep a token special once it was.
    const bool was_special = pos->special;
    *pos = t;
    if (was_special) special_contents.insert(pos->content);
  } else {
    added.insert(pos, t);
  }
  if (t.special) special_contents.insert(t.content);
  return id;
}

void Tokenizer::Impl::finalize() {
  uid = g_next_uid.fetch_add(1);
  rebuild_added();
  simple_symbols = !bpe.continuing_subword_prefix && !bpe.end_of_word_suffix;
  for (int b = 0; b < 256; ++b) {
    auto it = token_id.find(byte_char_utf8(static_cast<uint8_t>(b)));
    byte_sym[b] = it == token_id.end() ? -1 : it->second;
  }
  for (int b = 0; b < 256; ++b) {
    single_byte[b].clear();
    const char c = static_cast<char>(b);
    bpe_word(std::string_view(&c, 1), single_byte[b]);
  }
  // Decoder output and specialness per id: added tokens take precedence over the model vocabulary.
  int32_t bound = static_cast<int32_t>(vocab.size());
  for (const AddedToken& a : added) bound = std::max(bound, a.id + 1);
  id_bytes.assign(bound, std::string());
  id_special.assign(bound, 0);
  id_known.assign(bound, 0);
  auto decoded = [&](const std::string& tok) {
    if (!has_decoder) return tok;
    std::string out;
    if (!byte_level_to_bytes(tok, &out)) return tok;
    return out;
  };
  for (size_t i = 0; i < vocab.size(); ++i)
    if (present[i]) {
      id_bytes[i] = decoded(vocab[i]);
      id_known[i] = 1;
      id_special[i] = special_contents.count(vocab[i]) ? 1 : 0;
    }
  for (const AddedToken& a : added) {
    id_bytes[a.id] = decoded(a.content);
    id_known[a.id] = 1;
    id_special[a.id] = special_contents.count(a.content) ? 1 : 0;
  }
}

// Merge loop on one word's symbols: repeatedly merge the adjacent pair of lowest rank (leftmost
// first), exactly the order HuggingFace's priority queue produces.
static void merge_symbols(const MergeTable& table, std::vector<int32_t>& sym) {
  const size_t n0 = sym.size();
  if (n0 < 2) return;
  auto lookup = [&](int32_t a, int32_t b) {
    return table.find(a, b);
  };
  if (n0 <= 64) {
    uint64_t rk[64];
    size_t n = n0;
    for (size_t i = 0; i + 1 < n; ++i) rk[i] = lookup(sym[i], sym[i + 1]);
    while (n > 1) {
      size_t best = 0;
      uint64_t bv = rk[0];
      for (size_t i = 1; i + 1 < n; ++i)
        if (rk[i] < bv) {
          bv = rk[i];
          best = i;
        }
      if (bv == kNoMerge) break;
      sym[best] = static_cast<int32_t>(bv & 0xFFFFFFFFu);
      for (size_t i = best + 1; i + 1 < n; ++i) sym[i] = sym[i + 1];
      for (size_t i = best; i + 2 < n; ++i) rk[i] = rk[i + 1];
      --n;
      if (best > 0) rk[best - 1] = lookup(sym[best - 1], sym[best]);
      if (best + 1 < n) rk[best] = lookup(sym[best], sym[best + 1]);
    }
    sym.resize(n);
    return;
  }
  // Long words: linked list + heap of (rank, position), stale entries skipped.
  struct Node {
    int32_t c;
    int32_t prev, next;
    bool alive;
  };
  std::vector<Node> nodes(n0);
  for (size_t i = 0; i < n0; ++i) nodes[i] = {sym[i], int32_t(i) - 1, i + 1 < n0 ? int32_t(i + 1) : -1, true};
  struct Entry {
    uint32_t rank;
    int32_t pos;
    int32_t new_id;
    bool operator>(const Entry& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap;
  auto push = [&](int32_t pos) {
    const Node& a = nodes[pos];
    if (a.next < 0) return;
    const uint64_t v = lookup(a.c, nodes[a.next].c);
    if (v != kNoMerge) heap.push({uint32_t(v >> 32), pos, int32_t(v & 0xFFFFFFFFu)});
  };
  for (size_t i = 0; i + 1 < n0; ++i) push(int32_t(i));
  while (!heap.empty()) {
    const Entry top = heap.top();
    heap.pop();
    Node& a = nodes[top.pos];
    if (!a.alive || a.next < 0) continue;
    const uint64_t v = lookup(a.c, nodes[a.next].c);
    if (v == kNoMerge || int32_t(v & 0xFFFFFFFFu) != top.new_id) continue;  // stale
    Node& b = nodes[a.next];
    a.c = top.new_id;
    b.alive = false;
    a.next = b.next;
    if (b.next >= 0) nodes[b.next].prev = top.pos;
    if (a.prev >= 0) push(a.prev);
    push(top.pos);
  }
  size_t n = 0;
  for (int32_t i = 0; i >= 0; i = nodes[i].next) sym[n++] = nodes[i].c;
  sym.resize(n);
}

void Tokenizer::Impl::bpe_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (bpe.ignore_merges) {
    auto it = token_id.find(bytes_to_byte_level(word));
    if (it != token_id.end()) {
      out.push_back(it->second);
      return;
    }
  }
  thread_local std::vector<int32_t> sym;
  sym.clear();
  // Pending unknown token (id, fused) as HuggingFace's merge_word keeps it.
  int32_t unk = -1;
  const size_t n = word.size();
  auto unk_id = [&]() -> int32_t {
    auto it = token_id.find(*bpe.unk_token);
    if (it == token_id.end()) fail("tokenizer: unk_token '", *bpe.unk_token, "' is not in the vocabulary");
    return it->second;
  };
  for (size_t i = 0; i < n; ++i) {
    const auto b = static_cast<uint8_t>(word[i]);
    int32_t id = -1;
    std::string s;
    if (simple_symbols) {
      id = byte_sym[b];
      if (id < 0) s = byte_char_utf8(b);
    } else {
      s = byte_char_utf8(b);
      if (i > 0 && bpe.continuing_subword_prefix) s = *bpe.continuing_subword_prefix + s;
      if (i + 1 == n && bpe.end_of_word_suffix) s += *bpe.end_of_word_suffix;
      auto it = token_id.find(s);
      if (it != token_id.end()) id = it->second;
    }
    if (id >= 0) {
      if (unk >= 0) {
        sym.push_back(unk);
        unk = -1;
      }
      sym.push_back(id);
      continue;
    }
    if (bpe.byte_fallback) {
      std::vector<int32_t> fb;
      bool ok = true;
      for (unsigned char x : s) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", x);
        auto it = token_id.find(name);
        if (it == token_id.end()) {
          ok = false;
          break;
        }
        fb.push_back(it->second);
      }
      if (ok) {
        sym.insert(sym.end(), fb.begin(), fb.end());
        continue;
      }
    }
    if (bpe.unk_token) {
      if (unk >= 0 && bpe.fuse_unk) continue;  // fused into the pending one
      if (unk >= 0) sym.push_back(unk);
      unk = unk_id();
    }
    // Without an unk token the character is dropped, as HuggingFace does.
  }
  if (unk >= 0) sym.push_back(unk);
  merge_symbols(merge_table, sym);
  out.insert(out.end(), sym.begin(), sym.end());
}

void Tokenizer::Impl::encode_word(std::string_view word, WordCache& cache, std::vector<int32_t>& out) const {
  if (word.size() == 1) {
    const auto& v = single_byte[static_cast<uint8_t>(word[0])];
    out.insert(out.end(), v.begin(), v.end());
    return;
  }
  if (cache.lookup(word, out)) return;
  const size_t start = out.size();
  bpe_word(word, out);
  cache.insert(word, out.data() + start, out.size() - start);
}

void Tokenizer::Impl::encode_plain(std::string_view piece, bool first_of_split, std::vector<int32_t>& out) const {
  if (piece.empty()) return;  // empty splits are dropped before pre-tokenization
  if (pipe.pre_add_prefix_space && first_of_split && piece[0] != ' ') {
    std::string tmp;
    tmp.reserve(piece.size() + 1);
    tmp.push_back(' ');
    tmp.append(piece);
    encode_plain(tmp, false, out);
    return;
  }
  WordCache& cache = tl_caches.get(uid);
  if (!pipe.pre_use_regex) {
    encode_word(piece, cache, out);
    return;
  }
  // Words are looked up in groups: all of a group's cache slots are prefetched first, so the
  // lookups overlap their memory latency instead of paying it one after another.
  constexpr int kGroup = 16;
  struct Pending {
    size_t off, len;
    WordCache::Key key;
  };
  Pending group[kGroup];
  int n = 0;
  auto flush = [&]() {
    for (int i = 0; i < n; ++i) {
      const Pending& w = group[i];
      const std::string_view word = piece.substr(w.off, w.len);
      if (w.len == 1) {
        const auto& v = single_byte[static_cast<uint8_t>(word[0])];
        out.insert(out.end(), v.begin(), v.end());
        continue;
      }
      if (cache.lookup(word, w.key, out)) continue;
      const size_t start = out.size();
      bpe_word(word, out);
      cache.insert(word, w.key, out.data() + start, out.size() - start);
    }
    n = 0;
  };
  gpt2_split(piece, [&](size_t off, size_t len) {
    Pending& w = group[n++];
    w.off = off;
    w.len = len;
    if (len > 1) {
      w.key = WordCache::key_of(piece.substr(off, len));
      cache.prefetch(w.key);
    }
    if (n == kGroup) flush();
  });
  flush();
}

void Tokenizer::Impl::split_added(std::string_view text, std::vector<Piece>& pieces) const {
  // HuggingFace's find_matches on one sentence with one matcher.
  auto find_matches = [&](std::string_view s, size_t base, const AddedMatcher& m, auto&& emit) {
    size_t start_offset = 0, pos = 0;
    const size_t n = s.size();
    while (pos < n) {
      size_t i = pos;
      int k = -1;
      for (; i < n; ++i) {
        if (!m.first[static_cast<unsigned char>(s[i])]) continue;
        k = m.match_at(s, i);
        if (k >= 0) break;
      }
      if (k < 0) break;
      size_t start = i, stop = i + m.patterns[k].size();
      pos = stop;
      const int32_t id = m.ids[k];
      if (added_has_flags) {
        const AddedToken* t = nullptr;
        for (const AddedToken& a : added)
          if (a.id == id) t = &a;
        if (t && t->single_word) {
          const bool start_space = start == 0 || !is_word_char(last_cp(s.substr(0, start)));
          const bool stop_space = stop == n || !is_word_char(first_cp(s.substr(stop)));
          if (!start_space || !stop_space) continue;
        }
        if (t && t->lstrip) start = std::max(trailing_space_start(s.substr(0, start)), start_offset);
        if (t && t->rstrip) stop += leading_space_len(s.substr(stop));
      }
      if (start < start_offset) start = start_offset;
      if (start_offset < start) emit(Piece{-1, base + start_offset, start - start_offset});
      emit(Piece{id, base + start, stop - start});
      start_offset = stop;
    }
    if (start_offset < n) emit(Piece{-1, base + start_offset, n - start_offset});
  };
  if (match_norm.empty()) {
    find_matches(text, 0, match_raw, [&](const Piece& p) { pieces.push_back(p); });
    return;
  }
  std::vector<Piece> first;
  if (match_raw.empty()) first.push_back(Piece{-1, 0, text.size()});
  else find_matches(text, 0, match_raw, [&](const Piece& p) { first.push_back(p); });
  for (const Piece& p : first) {
    if (p.id >= 0) pieces.push_back(p);
    else find_matches(text.substr(p.off, p.len), p.off, match_norm, [&](const Piece& q) { pieces.push_back(q); });
  }
}

void Tokenizer::Impl::encode_text(std::string_view text, std::vector<int32_t>& out) const {
  if (match_raw.empty() && match_norm.empty()) {
    encode_plain(text, true, out);
    return;
  }
  std::vector<Piece> pieces;
  split_added(text, pieces);
  for (const Piece& p : pieces) {
    if (p.id >= 0) out.push_back(p.id);
    else encode_plain(text.substr(p.off, p.len), true, out);
  }
}

void Tokenizer::Impl::apply_post(std::vector<int32_t>& seq, std::vector<int32_t>& out) const {
  for (const TemplatePiece& p : post.single) {
    if (p.is_sequence) {
      out.insert(out.end(), seq.begin(), seq.end());
      continue;
    }
    for (const TemplateSpecial& s : post.specials)
      if (s.key == p.special_key) out.insert(out.end(), s.ids.begin(), s.ids.end());
  }
}

// ---------------------------------------------------------------- Tokenizer

Tokenizer::Tokenizer() : impl_(std::make_unique<Impl>()) { impl_->finalize(); }
Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::Tokenizer(const Tokenizer& o) : impl_(std::make_unique<Impl>(*o.impl_)) {}
Tokenizer& Tokenizer::operator=(const Tokenizer& o) {
  if (this != &o) impl_ = std::make_unique<Impl>(*o.impl_);
  return *this;
}

Tokenizer Tokenizer::load(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) fail(path, ": is a folder; expected a tokenizer.json file");
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(path, ": cannot open tokenizer file");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return from_json(s, path);
}

void Tokenizer::save(const std::string& path) const {
  std::ofstream f(path, std::ios::binary);
  if (!f) fail(path, ": cannot write tokenizer file");
  const std::string s = to_json();
  f.write(s.data(), static_cast<std::streamsize>(s.size()));
  if (!f) fail(path, ": write failed");
}

Tokenizer Tokenizer::from_vocab_merges(std::vector<std::string> vocab,
                                       std::vector<std::pair<std::string, std::string>> merges,
                                       const std::vector<AddedToken>& added, const BpeOptions& bpe,
                                       const PipelineOptions& pipe) {
  auto impl = std::make_unique<Impl>();
  impl->bpe = bpe;
  impl->pipe = pipe;
  impl->has_decoder = pipe.decoder_byte_level;
  impl->post.kind = PostKind::ByteLevel;
  impl->post.add_prefix_space = true;
  impl->post.trim_offsets = false;
  impl->post.use_regex = true;
  impl->present.assign(vocab.size(), 1);
  for (size_t i = 0; i < vocab.size(); ++i) {
    auto [it, fresh] = impl->token_id.emplace(vocab[i], static_cast<int32_t>(i));
    TV_CHECK(fresh, "duplicate vocabulary entry '", vocab[i], "'");
  }
  impl->model_size = vocab.size();
  impl->vocab = std::move(vocab);
  std::vector<std::pair<int32_t, int32_t>> pairs;
  for (const auto& [a, b] : merges) {
    auto ia = impl->token_id.find(a), ib = impl->token_id.find(b);
    TV_CHECK(ia != impl->token_id.end() && ib != impl->token_id.end(), "merge '", a, "' '", b, "' uses unknown tokens");
    pairs.emplace_back(ia->second, ib->second);
  }
  set_merges(*impl, pairs);
  for (const AddedToken& t : added) impl->add_token(t);
  impl->finalize();
  return Tokenizer(std::move(impl));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 8);
  encode_into(text, out, add_special_tokens);
  return out;
}

void Tokenizer::encode_into(std::string_view text, std::vector<int32_t>& out, bool add_special_tokens) const {
  if (add_special_tokens && impl_->post.kind == PostKind::Template) {
    std::vector<int32_t> seq;
    impl_->encode_text(text, seq);
    impl_->apply_post(seq, out);
    return;
  }
  impl_->encode_text(text, out);
}

std::vector<std::vector<int32_t>> Tokenizer::encode_batch(const std::vector<std::string_view>& texts, int threads,
                                                          bool add_special_tokens) const {
  std::vector<std::vector<int32_t>> out(texts.size());
  const int nt = resolve_threads(threads);
  const auto n = static_cast<int64_t>(texts.size());
#pragma omp parallel for schedule(dynamic, 16) num_threads(nt)
  for (int64_t i = 0; i < n; ++i) encode_into(texts[i], out[i], add_special_tokens);
  return out;
}

std::vector<int32_t> Tokenizer::encode_parallel(std::string_view text, int threads, bool add_special_tokens) const {
  const int nt = resolve_threads(threads);
  const Impl& im = *impl_;
  std::vector<Impl::Piece> pieces;
  if (im.match_raw.empty() && im.match_norm.empty()) pieces.push_back({-1, 0, text.size()});
  else im.split_added(text, pieces);
  // Work items: an added token, or a range of a plain piece cut where a letter or digit is followed
  // by U+0020 (a piece of the split pattern always ends there, whatever precedes it).
  struct Item {
    int32_t id;
    size_t off, len;
    bool first;
  };
  std::vector<Item> items;
  const size_t target = std::max<size_t>(size_t(1) << 16, text.size() / (size_t(nt) * 8 + 1));
  auto is_alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); };
  for (const Impl::Piece& p : pieces) {
    if (p.id >= 0) {
      items.push_back({p.id, p.off, p.len, false});
      continue;
    }
    size_t s = p.off;
    const size_t e = p.off + p.len;
    bool first = true;
    while (e - s > target) {
      size_t c = s + target;
      while (c < e && !(text[c] == ' ' && is_alnum(text[c - 1]))) ++c;
      if (c >= e) break;
      items.push_back({-1, s, c - s, first});
      first = false;
      s = c;
    }
    items.push_back({-1, s, e - s, first});
  }
  std::vector<std::vector<int32_t>> parts(items.size());
  const auto n = static_cast<int64_t>(items.size());
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
  for (int64_t i = 0; i < n; ++i) {
    const Item& it = items[i];
    if (it.id >= 0) parts[i].push_back(it.id);
    else im.encode_plain(text.substr(it.off, it.len), it.first, parts[i]);
  }
  size_t total = 0;
  for (const auto& v : parts) total += v.size();
  std::vector<int32_t> seq;
  seq.reserve(total);
  for (const auto& v : parts) seq.insert(seq.end(), v.begin(), v.end());
  if (add_special_tokens && im.post.kind == PostKind::Template) {
    std::vector<int32_t> out;
    im.apply_post(seq, out);
    return out;
  }
  return seq;
}

std::string Tokenizer::decode(const int32_t* ids, size_t n, bool skip_special_tokens) const {
  const Impl& im = *impl_;
  const auto bound = static_cast<int32_t>(im.id_bytes.size());
  std::string bytes;
  bool first = true;
  for (size_t i = 0; i < n; ++i) {
    const int32_t id = ids[i];
    if (id < 0 || id >= bound || !im.id_known[id]) continue;
    if (skip_special_tokens && im.id_special[id]) continue;
    if (!im.has_decoder) {
      // No decoder: HuggingFace joins the token strings with spaces.
      if (!first) bytes.push_back(' ');
      first = false;
    }
    bytes += im.id_bytes[id];
  }
  if (!im.has_decoder) return bytes;
  if (find_invalid_utf8(bytes) == std::string_view::npos) return bytes;
  return utf8_lossy(bytes);
}

int32_t Tokenizer::token_to_id(std::string_view token) const {
  const std::string key(token);
  if (auto it = impl_->added_id.find(key); it != impl_->added_id.end()) return it->second;
  if (auto it = impl_->token_id.find(key); it != impl_->token_id.end()) return it->second;
  return -1;
}

std::string Tokenizer::id_to_token(int32_t id) const {
  for (const AddedToken& a : impl_->added)
    if (a.id == id) return a.content;
  if (id >= 0 && size_t(id) < impl_->vocab.size() && impl_->present[id]) return impl_->vocab[id];
  return {};
}

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && size_t(id) < impl_->id_special.size() && impl_->id_special[id];
}

size_t Tokenizer::vocab_size() const {
  size_t n = impl_->model_size;
  for (const AddedToken& a : impl_->added)
    if (!impl_->token_id.count(a.content)) ++n;
  return n;
}

size_t Tokenizer::model_vocab_size() const { return impl_->model_size; }
int32_t Tokenizer::id_bound() const { return static_cast<int32_t>(impl_->id_bytes.size()); }
const std::vector<AddedToken>& Tokenizer::added_tokens() const { return impl_->added; }
const BpeOptions& Tokenizer::bpe_options() const { return impl_->bpe; }
size_t Tokenizer::num_merges() const { return impl_->merges.size(); }

int32_t Tokenizer::add_special_token(const std::string& content) {
  AddedToken t;
  t.content = content;
  t.special = true;
  t.normalized = false;
  return add_token(t);
}

int32_t Tokenizer::add_token(AddedToken token) {
  TV_CHECK(!token.content.empty(), "an added token needs content");
  const int32_t id = impl_->add_token(std::move(token));
  impl_->finalize();
  return id;
}

void Tokenizer::clear_cache() const {
  for (WordCache& c : tl_caches.slots)
    if (c.owner == impl_->uid) c.reset(0);
}

}  // namespace tv::tok
