// The frozen-feature cache (`--cache-features DIR`): the vision tower is frozen in every phase, so each
// image's tower output is computed once, stored in bf16, and reused across epochs, runs and phases.
//
// Layout: DIR/vit-<tower fingerprint>/<2 hex>/<16 hex>.tvf, one file per image, named by a hash of the
// image's absolute path. A file holds a header (magic, feature shape, the image's size and modification
// time, its path) and the bf16 features. A file for another tower lives under another fingerprint; a file
// whose image changed, or that is damaged, is ignored (and rewritten). Writes are atomic.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

namespace tv {

class FeatureCache {
 public:
  // tokens x hidden features per image; `fingerprint` identifies the tower weights and preprocessing.
  FeatureCache(const std::string& dir, uint64_t fingerprint, int64_t tokens, int64_t hidden);

  const std::string& dir() const { return dir_; }  // the fingerprint's folder
  int64_t feature_numel() const { return tokens_ * hidden_; }

  // Whether a file for the image exists (not validated: load() may still refuse it).
  bool has(const std::string& image) const;
  // Reads the image's features into out (feature_numel floats). False when absent, stale or damaged.
  bool load(const std::string& image, float* out) const;
  // Writes the features (rounded to bf16). Failures (disk full, permissions) are reported once on stderr
  // and otherwise ignored: the cache only saves time.
  void store(const std::string& image, const float* features) const;

  // Rounds to bf16 and back in place: what load() returns for stored features. Runs that use the cache
  // round freshly computed features too, so every epoch sees the same numbers.
  static void round_bf16(float* x, size_t n);

  std::string file_for(const std::string& image) const;

  // Counters (thread-safe).
  int64_t hits() const { return hits_; }
  int64_t stores() const { return stores_; }

 private:
  std::string dir_;
  int64_t tokens_ = 0, hidden_ = 0;
  mutable std::atomic<int64_t> hits_{0}, stores_{0};
  mutable std::atomic<bool> warned_{false};
};

}  // namespace tv
