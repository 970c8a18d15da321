// Parallel image loading: worker threads decode + preprocess items ahead of the consumer, which
// takes them strictly in index order. At most `capacity` items are held (finished or being made)
// beyond the last one taken. A bad image becomes an item with ok == false and the error text; it
// never stops the others.
#pragma once
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace tv {

// Where item i comes from: a file path, or encoded bytes already in memory (from_memory), named by
// `path` in messages.
struct ImageRef {
  std::string path;
  std::vector<uint8_t> bytes;
  bool from_memory = false;
};
using ImageSource = std::function<void(size_t index, ImageRef& ref)>;

struct PrefetchItem {
  size_t index = 0;
  std::string name;        // the path (or the name the source gave)
  bool ok = false;
  std::string error;       // what went wrong, when !ok
  std::vector<float> chw;  // [3, crop, crop] normalised pixels, when ok
};

struct PrefetchOptions {
  int workers = 0;   // <= 0: one per hardware thread
  int capacity = 0;  // items ahead of the consumer; <= 0: 2 * workers
  int resize_short = 256;
  int crop = 224;
};

class ImagePrefetcher {
 public:
  ImagePrefetcher(std::vector<std::string> paths, PrefetchOptions opt = {});
  // `source` is called from worker threads, concurrently, once per index in [0, count).
  ImagePrefetcher(size_t count, ImageSource source, PrefetchOptions opt = {});
  ~ImagePrefetcher();  // stops the workers (items not taken are dropped)
  ImagePrefetcher(const ImagePrefetcher&) = delete;
  ImagePrefetcher& operator=(const ImagePrefetcher&) = delete;

  // The next item in index order; false once all `size()` items were taken. Reusing the same
  // `out` lets its pixel buffer be recycled.
  bool next(PrefetchItem& out);

  size_t size() const { return count_; }
  size_t taken() const;     // items returned by next() so far
  size_t failures() const;  // of those, how many had ok == false
  int workers() const { return int(threads_.size()); }
  int capacity() const { return capacity_; }

 private:
  struct Slot {
    bool ready = false;
    PrefetchItem item;
  };
  void start(PrefetchOptions opt);
  void work();

  size_t count_ = 0;
  ImageSource source_;
  int capacity_ = 0, resize_short_ = 256, crop_ = 224;
  std::vector<Slot> ring_;
  mutable std::mutex mu_;
  std::condition_variable space_, ready_;
  size_t next_claim_ = 0, next_take_ = 0, failures_ = 0;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace tv
