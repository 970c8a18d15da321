// ImagePrefetcher: in-order delivery, failures reported per item, bounded look-ahead, clean stop.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <iterator>
#include <thread>

#include "core/error.h"
#include "data/image.h"
#include "data/image_prefetch.h"

using namespace tv;

namespace {

const std::string kDir = std::string(TV_FIXTURE_DIR) + "/images/";

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

const std::vector<std::string> kFiles = {"photo_420.jpg", "truncated.jpg", "gray.png",  "cmyk.jpg",
                                         "not_an_image.jpg", "rgba.png",   "palette.png", "small.jpg",
                                         "missing_file.png", "photo_444.jpg", "gray16.png", "ycck.jpg"};
bool bad(const std::string& f) { return f == "truncated.jpg" || f == "not_an_image.jpg" || f == "missing_file.png"; }

}  // namespace

TEST(ImagePrefetch, InOrderWithFailuresCounted) {
  const int crop = 24;
  std::vector<std::string> paths;
  for (int rep = 0; rep < 3; ++rep)
    for (const auto& f : kFiles) paths.push_back(kDir + f);
  PrefetchOptions opt;
  opt.workers = 3;
  opt.capacity = 2;
  opt.resize_short = 32;
  opt.crop = crop;
  ImagePrefetcher pf(paths, opt);
  EXPECT_EQ(pf.size(), paths.size());
  PrefetchItem item;
  size_t i = 0, failed = 0;
  std::vector<float> expect(size_t(3) * crop * crop);
  while (pf.next(item)) {
    ASSERT_LT(i, paths.size());
    EXPECT_EQ(item.index, i);
    EXPECT_EQ(item.name, paths[i]);
    const std::string base = kFiles[i % kFiles.size()];
    EXPECT_EQ(item.ok, !bad(base)) << base << ": " << item.error;
    if (item.ok) {
      preprocess_image_file(paths[i], expect.data(), 32, crop);
      EXPECT_EQ(item.chw, expect) << base;
    } else {
      ++failed;
      EXPECT_NE(item.error.find(paths[i]), std::string::npos) << item.error;
    }
    ++i;
  }
  EXPECT_EQ(i, paths.size());
  EXPECT_EQ(pf.taken(), paths.size());
  EXPECT_EQ(pf.failures(), failed);
  EXPECT_EQ(failed, 9u);
  EXPECT_FALSE(pf.next(item));
}

// Bytes from a callback (images held in memory or in an archive), and a source that throws.
TEST(ImagePrefetch, ByteSourceAndThrowingSource) {
  const std::vector<uint8_t> jpg = read_bytes(kDir + "photo_444.jpg");
  ImageSource src = [&](size_t i, ImageRef& ref) {
    if (i == 2) throw Error("shard entry 2 is missing");
    ref.path = "mem" + std::to_string(i);
    ref.bytes = jpg;
    if (i == 4) ref.bytes.resize(ref.bytes.size() / 3);
    ref.from_memory = true;
  };
  PrefetchOptions opt;
  opt.workers = 2;
  opt.resize_short = 40;
  opt.crop = 32;
  ImagePrefetcher pf(6, src, opt);
  std::vector<float> expect(3 * 32 * 32);
  preprocess_image_memory(jpg.data(), jpg.size(), expect.data(), 40, 32);
  PrefetchItem item;
  for (size_t i = 0; i < 6; ++i) {
    ASSERT_TRUE(pf.next(item));
    EXPECT_EQ(item.index, i);
    if (i == 2) {
      EXPECT_FALSE(item.ok);
      EXPECT_NE(item.error.find("shard entry 2"), std::string::npos);
    } else if (i == 4) {
      EXPECT_FALSE(item.ok);
      EXPECT_NE(item.error.find("mem4"), std::string::npos) << item.error;
    } else {
      EXPECT_TRUE(item.ok) << item.error;
      EXPECT_EQ(item.chw, expect);
    }
  }
  EXPECT_FALSE(pf.next(item));
  EXPECT_EQ(pf.failures(), 2u);
}

// Workers never run more than `capacity` items ahead of the consumer.
TEST(ImagePrefetch, LookAheadIsBounded) {
  const std::vector<uint8_t> png = read_bytes(kDir + "gray.png");
  std::atomic<size_t> max_started{0};
  ImageSource src = [&](size_t i, ImageRef& ref) {
    size_t m = max_started.load();
    while (i > m && !max_started.compare_exchange_weak(m, i)) {
    }
    ref.path = "gray";
    ref.bytes = png;
    ref.from_memory = true;
  };
  PrefetchOptions opt;
  opt.workers = 4;
  opt.capacity = 3;
  opt.resize_short = 16;
  opt.crop = 16;
  ImagePrefetcher pf(40, src, opt);
  PrefetchItem item;
  for (size_t taken = 0; taken < 40; ++taken) {
    if (taken % 10 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));  // let workers race ahead
    EXPECT_LE(max_started.load(), taken + 2) << "after taking " << taken;  // items < taken + capacity
    ASSERT_TRUE(pf.next(item));
    EXPECT_TRUE(item.ok);
  }
}

// Destroying the prefetcher before everything was taken stops the workers without hanging.
TEST(ImagePrefetch, EarlyStopAndEmpty) {
  std::vector<std::string> paths(50, kDir + "photo_420.jpg");
  PrefetchOptions opt;
  opt.workers = 2;
  opt.resize_short = 16;
  opt.crop = 8;
  {
    ImagePrefetcher pf(paths, opt);
    PrefetchItem item;
    ASSERT_TRUE(pf.next(item));
    EXPECT_TRUE(item.ok);
  }
  ImagePrefetcher none(std::vector<std::string>{}, opt);
  PrefetchItem item;
  EXPECT_FALSE(none.next(item));
  EXPECT_EQ(none.failures(), 0u);
}
