// Small open-addressing hash tables for the tokenizer's hot paths (merge ranks, word cache, word
// counts). Internal to src/tokenizer.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace tv::tok {

inline uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

inline uint64_t hash_bytes(const char* p, size_t n) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xff51afd7ed558ccdull);
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
    h ^= h >> 29;
    p += 8;
    n -= 8;
  }
  if (n) {
    uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = (h ^ w) * 0x94d049bb133111ebull;
    h ^= h >> 31;
  }
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 32;
  return h;
}

// uint64 key -> V. The key ~0 is reserved (marks empty slots).
template <typename V>
class U64Map {
 public:
  static constexpr uint64_t kEmpty = ~uint64_t(0);

  explicit U64Map(size_t expected = 16) { rehash(capacity_for(expected)); }

  size_t size() const { return size_; }

  const V* find(uint64_t key) const {
    size_t i = mix64(key) & mask_;
    while (true) {
      const Slot& s = slots_[i];
      if (s.key == key) return &s.value;
      if (s.key == kEmpty) return nullptr;
      i = (i + 1) & mask_;
    }
  }
  V* find(uint64_t key) { return const_cast<V*>(static_cast<const U64Map*>(this)->find(key)); }

  // Returns the value for key, inserting `init` when absent.
  V& get_or_insert(uint64_t key, const V& init = V()) {
    if ((size_ + 1) * 2 > slots_.size()) rehash(slots_.size() * 2);
    size_t i = mix64(key) & mask_;
    while (true) {
      Slot& s = slots_[i];
      if (s.key == key) return s.value;
      if (s.key == kEmpty) {
        s.key = key;
        s.value = init;
        ++size_;
        return s.value;
      }
      i = (i + 1) & mask_;
    }
  }

  template <typename F>
  void for_each(F&& f) const {
    for (const Slot& s : slots_)
      if (s.key != kEmpty) f(s.key, s.value);
  }

  void clear() {
    for (Slot& s : slots_) s.key = kEmpty;
    size_ = 0;
  }

 private:
  struct Slot {
    uint64_t key = kEmpty;
    V value{};
  };
  static size_t capacity_for(size_t n) {
    size_t c = 16;
    while (c < n * 2) c *= 2;
    return c;
  }
  void rehash(size_t cap) {
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(cap, Slot{});
    mask_ = cap - 1;
    size_ = 0;
    for (const Slot& s : old)
      if (s.key != kEmpty) get_or_insert(s.key, s.value);
  }
  std::vector<Slot> slots_;
  size_t mask_ = 0, size_ = 0;
};

// Byte-string key -> uint64 value, keys kept in one arena. Used for word counts and as the word
// cache (value = offset/length into an id arena).
class StringMap {
 public:
  explicit StringMap(size_t expected = 1024) { rehash(capacity_for(expected)); }

  size_t size() const { return size_; }
  size_t arena_bytes() const { return keys_.size(); }

  const uint64_t* find(std::string_view key, uint64_t h) const {
    size_t i = h & mask_;
    while (true) {
      const Slot& s = slots_[i];
      if (s.hash == 0) return nullptr;
      if (s.hash == h && s.len == key.size() && std::memcmp(keys_.data() + s.off, key.data(), key.size()) == 0)
        return &s.value;
      i = (i + 1) & mask_;
    }
  }
  const uint64_t* find(std::string_view key) const { return find(key, hash(key)); }

  uint64_t& get_or_insert(std::string_view key, uint64_t h, uint64_t init = 0) {
    if ((size_ + 1) * 2 > slots_.size()) rehash(slots_.size() * 2);
    size_t i = h & mask_;
    while (true) {
      Slot& s = slots_[i];
      if (s.hash == 0) {
        s.hash = h;
        s.off = keys_.size();
        s.len = static_cast<uint32_t>(key.size());
        s.value = init;
        keys_.append(key.data(), key.size());
        ++size_;
        return s.value;
      }
      if (s.hash == h && s.len == key.size() && std::memcmp(keys_.data() + s.off, key.data(), key.size()) == 0)
        return s.value;
      i = (i + 1) & mask_;
    }
  }
  uint64_t& get_or_insert(std::string_view key, uint64_t init = 0) { return get_or_insert(key, hash(key), init); }

  template <typename F>
  void for_each(F&& f) const {
    for (const Slot& s : slots_)
      if (s.hash != 0) f(std::string_view(keys_.data() + s.off, s.len), s.value);
  }

  void clear() {
    for (Slot& s : slots_) s.hash = 0;
    keys_.clear();
    size_ = 0;
  }

  // Never 0: 0 marks an empty slot.
  static uint64_t hash(std::string_view key) { return hash_bytes(key.data(), key.size()) | 1; }

 private:
  struct Slot {
    uint64_t hash = 0;
    uint64_t off = 0;
    uint32_t len = 0;
    uint64_t value = 0;
  };
  static size_t capacity_for(size_t n) {
    size_t c = 16;
    while (c < n * 2) c *= 2;
    return c;
  }
  void rehash(size_t cap) {
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(cap, Slot{});
    mask_ = cap - 1;
    for (const Slot& s : old) {
      if (s.hash == 0) continue;
      size_t i = s.hash & mask_;
      while (slots_[i].hash != 0) i = (i + 1) & mask_;
      slots_[i] = s;
    }
  }
  std::vector<Slot> slots_;
  std::string keys_;
  size_t mask_ = 0, size_ = 0;
};

}  // namespace tv::tok
