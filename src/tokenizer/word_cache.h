// Per-thread cache of word -> token ids for the encoder's hot path. Words of up to 16 bytes are
// stored in the slot itself (two overlapping 8-byte loads identify them exactly), as are up to two
// ids, so the common lookup touches one cache line. Internal to src/tokenizer.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/flat_map.h"

namespace tv::tok {

class WordCache {
 public:
  static constexpr size_t kMaxEntries = size_t(1) << 18;  // stop inserting beyond this
  static constexpr size_t kMaxWord = 256;                 // longer words are not cached (as HuggingFace)

  WordCache() { reset(0); }

  uint64_t owner = 0;     // state id of the tokenizer this cache belongs to
  uint64_t last_use = 0;  // for choosing which cache of a thread to recycle

  void reset(uint64_t new_owner) {
    owner = new_owner;
    slots_.assign(size_t(1) << 12, Slot{});
    mask_ = slots_.size() - 1;
    size_ = 0;
    keys_.clear();
    ids_.clear();
  }

  size_t size() const { return size_; }

  struct Key {
    uint64_t k0, k1, hash;
    uint32_t len;
  };

  // Overlapping loads cover every byte of a short word, so (k0, k1, len) identifies it.
  static Key key_of(std::string_view w) {
    const char* p = w.data();
    const size_t n = w.size();
    Key k;
    k.len = static_cast<uint32_t>(n);
    if (n > 16) {
      k.k0 = hash_bytes(p, n);
      k.k1 = 0;
      k.hash = k.k0;
      return k;
    }
    if (n >= 8) {
      k.k0 = load64(p);
      k.k1 = load64(p + n - 8);
    } else if (n >= 4) {
      k.k0 = load32(p) | (uint64_t(load32(p + n - 4)) << 32);
      k.k1 = 0;
    } else {
      k.k0 = uint64_t(uint8_t(p[0])) | (uint64_t(uint8_t(p[n / 2])) << 8) | (uint64_t(uint8_t(p[n - 1])) << 16);
      k.k1 = 0;
    }
    k.hash = mix64(k.k0 ^ (k.k1 * 0x9E3779B97F4A7C15ull) ^ n);
    return k;
  }

  // Starts loading the slot a lookup of k will read first.
  void prefetch(const Key& k) const { __builtin_prefetch(&slots_[k.hash & mask_]); }

  bool lookup(std::string_view word, std::vector<int32_t>& out) const { return lookup(word, key_of(word), out); }

  // Appends the cached ids of `word` (whose key is k) to out and returns true, or returns false.
  bool lookup(std::string_view word, const Key& k, std::vector<int32_t>& out) const {
    size_t i = k.hash & mask_;
    while (true) {
      const Slot& s = slots_[i];
      if (s.len == 0) return false;
      if (s.len == k.len && s.k0 == k.k0 &&
          (k.len <= 16 ? s.k1 == k.k1 : std::memcmp(keys_.data() + s.k1, word.data(), word.size()) == 0)) {
        if (s.cnt == 1) {
          out.push_back(s.id0);
        } else if (s.cnt == 2) {
          out.push_back(s.id0);
          out.push_back(s.id1);
        } else {
          const int32_t* p = ids_.data() + s.id1;
          out.insert(out.end(), p, p + s.cnt);
        }
        return true;
      }
      i = (i + 1) & mask_;
    }
  }

  void insert(std::string_view word, const int32_t* ids, size_t n) { insert(word, key_of(word), ids, n); }

  void insert(std::string_view word, const Key& k, const int32_t* ids, size_t n) {
    if (word.empty() || word.size() >= kMaxWord || size_ >= kMaxEntries || n == 0) return;
    if ((size_ + 1) * 2 > slots_.size()) grow();
    Slot s;
    s.k0 = k.k0;
    s.k1 = k.k1;
    s.len = k.len;
    s.cnt = static_cast<uint32_t>(n);
    if (k.len > 16) {
      s.k1 = keys_.size();
      keys_.append(word.data(), word.size());
    }
    if (n <= 2) {
      s.id0 = ids[0];
      s.id1 = n == 2 ? ids[1] : 0;
    } else {
      s.id1 = static_cast<int32_t>(ids_.size());
      ids_.insert(ids_.end(), ids, ids + n);
    }
    place(s, k.hash);
    ++size_;
  }

 private:
  struct Slot {
    uint64_t k0 = 0, k1 = 0;  // short words: the bytes; long words: hash, offset in keys_
    uint32_t len = 0;         // 0 marks an empty slot
    uint32_t cnt = 0;
    int32_t id0 = 0;
    int32_t id1 = 0;  // second id, or offset into ids_ when cnt > 2
  };
  static uint64_t load64(const char* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
  }
  static uint32_t load32(const char* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
  }
  static uint64_t slot_hash(const Slot& s) {
    return s.len > 16 ? s.k0 : mix64(s.k0 ^ (s.k1 * 0x9E3779B97F4A7C15ull) ^ s.len);
  }
  void place(const Slot& s, uint64_t hash) {
    size_t i = hash & mask_;
    while (slots_[i].len != 0) i = (i + 1) & mask_;
    slots_[i] = s;
  }
  void grow() {
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(old.size() * 2, Slot{});
    mask_ = slots_.size() - 1;
    for (const Slot& s : old)
      if (s.len != 0) place(s, slot_hash(s));
  }

  std::vector<Slot> slots_;
  size_t mask_ = 0, size_ = 0;
  std::string keys_;
  std::vector<int32_t> ids_;
};

}  // namespace tv::tok
