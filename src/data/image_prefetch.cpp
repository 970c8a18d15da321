#include "data/image_prefetch.h"

#include <algorithm>
#include <exception>
#include <memory>
#include <utility>

#include "core/error.h"
#include "data/image.h"

namespace tv {

ImagePrefetcher::ImagePrefetcher(std::vector<std::string> paths, PrefetchOptions opt) : count_(paths.size()) {
  auto shared = std::make_shared<std::vector<std::string>>(std::move(paths));
  source_ = [shared](size_t i, ImageRef& ref) { ref.path = (*shared)[i]; };
  start(opt);
}

ImagePrefetcher::ImagePrefetcher(size_t count, ImageSource source, PrefetchOptions opt)
    : count_(count), source_(std::move(source)) {
  TV_CHECK(source_ != nullptr, "ImagePrefetcher needs an image source");
  start(opt);
}

void ImagePrefetcher::start(PrefetchOptions opt) {
  TV_CHECK(opt.resize_short > 0 && opt.crop > 0, "prefetch sizes: resize ", opt.resize_short, ", crop ", opt.crop);
  int workers = opt.workers > 0 ? opt.workers : int(std::max(1u, std::thread::hardware_concurrency()));
  workers = int(std::min<size_t>(size_t(workers), std::max<size_t>(count_, 1)));
  capacity_ = opt.capacity > 0 ? opt.capacity : 2 * workers;
  resize_short_ = opt.resize_short;
  crop_ = opt.crop;
  ring_.resize(size_t(capacity_));
  for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { work(); });
}

ImagePrefetcher::~ImagePrefetcher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  space_.notify_all();
  for (auto& t : threads_) t.join();
}

void ImagePrefetcher::work() {
  ImageRef ref;
  for (;;) {
    size_t i;
    PrefetchItem item;
    {
      std::unique_lock<std::mutex> lock(mu_);
      // Item i may start once the consumer has taken item i - capacity (its slot is then free).
      space_.wait(lock, [&] { return stop_ || next_claim_ >= count_ || next_claim_ < next_take_ + size_t(capacity_); });
      if (stop_ || next_claim_ >= count_) return;
      i = next_claim_++;
      item.chw = std::move(ring_[i % ring_.size()].item.chw);  // recycle the slot's buffer
    }
    item.index = i;
    item.ok = false;
    item.error.clear();
    try {
      ref.path.clear();
      ref.bytes.clear();
      ref.from_memory = false;
      source_(i, ref);
      item.name = ref.path;
      const ImageU8 rgb = ref.from_memory ? decode_image_memory(ref.bytes.data(), ref.bytes.size(), ref.path)
                                          : decode_image_file(ref.path);
      item.chw.resize(size_t(3) * crop_ * crop_);
      preprocess_to_chw(rgb, item.chw.data(), resize_short_, crop_);
      item.ok = true;
    } catch (const std::exception& e) {
      item.error = e.what();
    } catch (...) {
      item.error = "unknown error while loading the image";
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      Slot& s = ring_[i % ring_.size()];
      s.item = std::move(item);
      s.ready = true;
    }
    ready_.notify_all();
  }
}

bool ImagePrefetcher::next(PrefetchItem& out) {
  std::unique_lock<std::mutex> lock(mu_);
  if (next_take_ >= count_) return false;
  Slot& s = ring_[next_take_ % ring_.size()];
  ready_.wait(lock, [&] { return s.ready; });
  std::swap(out, s.item);  // the caller's old buffer goes back to the slot for reuse
  s.ready = false;
  if (!out.ok) ++failures_;
  ++next_take_;
  lock.unlock();
  space_.notify_all();
  return true;
}

size_t ImagePrefetcher::taken() const {
  std::lock_guard<std::mutex> lock(mu_);
  return next_take_;
}

size_t ImagePrefetcher::failures() const {
  std::lock_guard<std::mutex> lock(mu_);
  return failures_;
}

}  // namespace tv
