#include "train/image_features.h"

#include <algorithm>
#include <cstring>
#include <exception>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "data/image.h"
#include "data/image_prefetch.h"

namespace tv {

ImageFeatureSource::ImageFeatureSource(const VisionTower& tower, FeatureCache* cache, int workers, int64_t tower_batch)
    : tower_(tower), cache_(cache), tower_batch_(std::max<int64_t>(1, tower_batch)) {
  // Decoding is cheap next to the tower: a few threads keep ahead without starving the GEMMs.
  workers_ = workers > 0 ? workers : int(std::min(4u, std::max(1u, std::thread::hardware_concurrency())));
}

ImageFeatureSource::~ImageFeatureSource() = default;

std::map<std::string, std::string> ImageFeatureSource::bad_images() const {
  std::lock_guard<std::mutex> lock(mu_);
  return bad_;
}

bool ImageFeatureSource::is_bad(const std::string& image) const {
  std::lock_guard<std::mutex> lock(mu_);
  return bad_.count(image) > 0;
}

void ImageFeatureSource::mark_bad(const std::string& image, const std::string& error) {
  std::lock_guard<std::mutex> lock(mu_);
  bad_.emplace(image, error);
}

std::string ImageFeatureSource::bad_report(size_t show) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (bad_.empty()) return "";
  std::string s = str_cat(bad_.size(), " image", bad_.size() == 1 ? "" : "s", " could not be read and ",
                          bad_.size() == 1 ? "was" : "were", " skipped");
  size_t i = 0;
  for (const auto& [path, err] : bad_) {
    if (i++ == show) {
      s += str_cat("\n  ... and ", bad_.size() - show, " more");
      break;
    }
    s += "\n  " + err;
    if (err.find(path) == std::string::npos) s += " (" + path + ")";
  }
  return s;
}

ImageFeatureStream::ImageFeatureStream(ImageFeatureSource& source, std::vector<std::string> plan)
    : src_(source), plan_(std::move(plan)) {
  // Decode ahead only what the cache cannot serve: with a cache, the first occurrence of each uncached image
  // (later ones are cached by the time they are reached); without one, everything.
  FeatureCache* cache = src_.cache();
  std::unordered_set<std::string> seen;
  for (size_t pos = 0; pos < plan_.size(); ++pos) {
    const std::string& p = plan_[pos];
    if (src_.is_bad(p)) continue;
    if (cache && (cache->has(p) || !seen.insert(p).second)) continue;
    fetch_.push_back(pos);
  }
  if (fetch_.empty()) return;
  const VisionConfig& vc = src_.tower().config();
  PrefetchOptions po;
  po.workers = src_.workers();
  po.capacity = int(std::max<int64_t>(2 * int64_t(po.workers), 2 * src_.tower_batch()));
  po.resize_short = int(vc.resize);
  po.crop = int(vc.image);
  prefetch_ = std::make_unique<ImagePrefetcher>(
      fetch_.size(), [this](size_t i, ImageRef& ref) { ref.path = plan_[fetch_[i]]; }, po);
}

ImageFeatureStream::~ImageFeatureStream() = default;

Tensor ImageFeatureStream::take(int64_t n, std::vector<size_t>& used, int64_t* skipped) {
  const VisionConfig& vc = src_.tower().config();
  FeatureCache* cache = src_.cache();
  const size_t numel = size_t(vc.num_patches() * vc.hidden), pix = size_t(3 * vc.image * vc.image);
  struct Entry {
    bool cached;
    size_t slot;  // into cached (features) or pixels
  };
  std::vector<Entry> entries;
  std::vector<float> cached, pixels;
  std::vector<std::string> pixel_paths;
  std::unordered_map<std::string, size_t> pending;  // image -> pixel slot in this request
  PrefetchItem item;
  auto add_pixels = [&](const std::string& path, const float* data) {
    pending[path] = pixel_paths.size();
    pixel_paths.push_back(path);
    pixels.insert(pixels.end(), data, data + pix);
    entries.push_back({false, pixel_paths.size() - 1});
  };
  std::vector<float> buf(std::max(numel, pix));
  while (int64_t(entries.size()) < n && cursor_ < plan_.size()) {
    const size_t pos = cursor_++;
    const std::string& path = plan_[pos];
    const bool fetched = fetch_next_ < fetch_.size() && fetch_[fetch_next_] == pos;
    if (fetched) {
      ++fetch_next_;
      prefetch_->next(item);
      if (!item.ok) {
        src_.mark_bad(path, item.error);
        if (skipped) ++*skipped;
        continue;
      }
      auto it = pending.find(path);
      if (it != pending.end())
        entries.push_back({false, it->second});
      else
        add_pixels(path, item.chw.data());
    } else if (src_.is_bad(path)) {
      if (skipped) ++*skipped;
      continue;
    } else if (auto it = pending.find(path); it != pending.end()) {
      entries.push_back({false, it->second});
    } else if (cache && cache->load(path, buf.data())) {
      cached.insert(cached.end(), buf.begin(), buf.begin() + int64_t(numel));
      entries.push_back({true, cached.size() / numel - 1});
    } else {
      // Not decoded ahead (a cache file that turned out stale or damaged): decode now.
      try {
        preprocess_image_file(path, buf.data(), int(vc.resize), int(vc.image));
      } catch (const std::exception& e) {
        src_.mark_bad(path, e.what());
        if (skipped) ++*skipped;
        continue;
      }
      add_pixels(path, buf.data());
    }
    used.push_back(pos);
  }
  const int64_t m = int64_t(entries.size());
  if (m == 0) return Tensor();

  Tensor computed;
  if (!pixel_paths.empty()) {
    const int64_t M = int64_t(pixel_paths.size());
    Tensor px = Tensor::empty({M, 3, vc.image, vc.image});
    std::memcpy(px.data<float>(), pixels.data(), pixels.size() * sizeof(float));
    computed = src_.tower().forward(px, src_.tower_batch()).to(Device::CPU).contiguous();
    src_.count_tower(M);
    if (cache) {
      FeatureCache::round_bf16(computed.data<float>(), size_t(computed.numel()));
      for (int64_t i = 0; i < M; ++i) cache->store(pixel_paths[size_t(i)], computed.data<float>() + size_t(i) * numel);
    }
  }
  Tensor out = Tensor::empty({m, vc.num_patches(), vc.hidden});
  float* o = out.data<float>();
  for (int64_t i = 0; i < m; ++i) {
    const Entry& e = entries[size_t(i)];
    const float* from = e.cached ? cached.data() + e.slot * numel : computed.data<float>() + e.slot * numel;
    std::memcpy(o + size_t(i) * numel, from, numel * sizeof(float));
  }
  return out;
}

}  // namespace tv
