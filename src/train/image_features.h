// Tower features for the images of a training or validation pass, in order: from the feature cache when it
// has them, else decoded + preprocessed (PIL-exact, on prefetch worker threads, ahead of use) and run through
// the frozen tower in one batch per request (then stored in the cache). An image that is missing or cannot
// be decoded is skipped, remembered and reported, never fatal.
//
// Determinism: what a request returns depends only on the plan position it starts from and on the cache's
// contents, so a resumed run computes exactly what the uninterrupted run computed.
#pragma once
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "data/feature_cache.h"
#include "model/vit.h"

namespace tv {

class ImagePrefetcher;

class ImageFeatureSource {
 public:
  // cache may be null (no caching). workers: decode threads (<= 0: min(4, cores)).
  ImageFeatureSource(const VisionTower& tower, FeatureCache* cache, int workers = 0, int64_t tower_batch = 32);
  ~ImageFeatureSource();

  const VisionTower& tower() const { return tower_; }
  FeatureCache* cache() const { return cache_; }
  int workers() const { return workers_; }
  int64_t tower_batch() const { return tower_batch_; }

  // Images that could not be read, with the reason (first error per image).
  std::map<std::string, std::string> bad_images() const;
  bool is_bad(const std::string& image) const;
  void mark_bad(const std::string& image, const std::string& error);
  // "N images could not be read ..." with up to `show` examples; empty when none.
  std::string bad_report(size_t show = 5) const;
  int64_t tower_images() const { return tower_images_; }  // images run through the tower so far

  void count_tower(int64_t n) { tower_images_ += n; }

 private:
  const VisionTower& tower_;
  FeatureCache* cache_;
  int workers_;
  int64_t tower_batch_;
  int64_t tower_images_ = 0;
  mutable std::mutex mu_;
  std::map<std::string, std::string> bad_;
};

// One pass over a plan: image paths in the order they will be asked for.
class ImageFeatureStream {
 public:
  ImageFeatureStream(ImageFeatureSource& source, std::vector<std::string> plan);
  ~ImageFeatureStream();
  ImageFeatureStream(const ImageFeatureStream&) = delete;
  ImageFeatureStream& operator=(const ImageFeatureStream&) = delete;

  // Takes plan items in order until `n` usable images were found or the plan ends. Returns their features
  // [m, P, hidden] (m <= n; undefined when m == 0) and appends the plan positions used to `used`;
  // `skipped` counts the unusable items passed over.
  Tensor take(int64_t n, std::vector<size_t>& used, int64_t* skipped = nullptr);
  size_t position() const { return cursor_; }  // plan items consumed
  bool done() const { return cursor_ >= plan_.size(); }

 private:
  ImageFeatureSource& src_;
  std::vector<std::string> plan_;
  std::vector<size_t> fetch_;  // plan positions the prefetcher decodes, in order
  size_t fetch_next_ = 0, cursor_ = 0;
  std::unique_ptr<ImagePrefetcher> prefetch_;
};

}  // namespace tv
