#include "data/feature_cache.h"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "io/atomic_file.h"

namespace tv {
namespace fs = std::filesystem;

namespace {

constexpr char kMagic[8] = {'T', 'V', 'F', 'E', 'A', 'T', '1', '\0'};

struct Header {
  char magic[8];
  int64_t tokens, hidden;
  uint64_t image_size;
  int64_t image_mtime;
  uint64_t path_len;
};

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

std::string canonical_name(const std::string& image) {
  std::error_code ec;
  fs::path p = fs::absolute(image, ec);
  return (ec ? fs::path(image) : p).lexically_normal().string();
}

// The image's identity on disk; false when it cannot be read.
bool image_stamp(const std::string& image, uint64_t& size, int64_t& mtime) {
  std::error_code ec;
  size = uint64_t(fs::file_size(image, ec));
  if (ec) return false;
  auto t = fs::last_write_time(image, ec);
  if (ec) return false;
  mtime = int64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count());
  return true;
}

}  // namespace

FeatureCache::FeatureCache(const std::string& dir, uint64_t fingerprint, int64_t tokens, int64_t hidden)
    : tokens_(tokens), hidden_(hidden) {
  char name[32];
  std::snprintf(name, sizeof name, "vit-%016llx", (unsigned long long)fingerprint);
  dir_ = (fs::path(dir) / name).string();
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) fail(dir, ": cannot create the feature cache folder: ", ec.message());
}

std::string FeatureCache::file_for(const std::string& image) const {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", (unsigned long long)fnv1a(canonical_name(image)));
  return (fs::path(dir_) / std::string(hex, 2) / (std::string(hex) + ".tvf")).string();
}

bool FeatureCache::has(const std::string& image) const {
  std::error_code ec;
  return fs::exists(file_for(image), ec);
}

bool FeatureCache::load(const std::string& image, float* out) const {
  uint64_t size;
  int64_t mtime;
  if (!image_stamp(image, size, mtime)) return false;
  std::ifstream in(file_for(image), std::ios::binary);
  if (!in) return false;
  Header h;
  if (!in.read(reinterpret_cast<char*>(&h), sizeof h)) return false;
  if (std::memcmp(h.magic, kMagic, 8) != 0 || h.tokens != tokens_ || h.hidden != hidden_ || h.image_size != size ||
      h.image_mtime != mtime || h.path_len > 65536)
    return false;
  std::string path(size_t(h.path_len), '\0');
  if (!in.read(path.data(), std::streamsize(path.size())) || path != canonical_name(image)) return false;
  const size_t n = size_t(tokens_ * hidden_);
  std::vector<uint16_t> raw(n);
  if (!in.read(reinterpret_cast<char*>(raw.data()), std::streamsize(n * 2))) return false;
  if (in.peek() != std::char_traits<char>::eof()) return false;  // trailing bytes: not one of ours
  for (size_t i = 0; i < n; ++i) out[i] = bf16_to_f32(bf16{raw[i]});
  ++hits_;
  return true;
}

void FeatureCache::store(const std::string& image, const float* features) const {
  uint64_t size;
  int64_t mtime;
  if (!image_stamp(image, size, mtime)) return;
  const std::string path = canonical_name(image), file = file_for(image);
  const size_t n = size_t(tokens_ * hidden_);
  Header h;
  std::memcpy(h.magic, kMagic, 8);
  h.tokens = tokens_;
  h.hidden = hidden_;
  h.image_size = size;
  h.image_mtime = mtime;
  h.path_len = path.size();
  std::vector<uint16_t> raw(n);
  for (size_t i = 0; i < n; ++i) raw[i] = f32_to_bf16(features[i]).bits;
  try {
    std::error_code ec;
    fs::create_directories(fs::path(file).parent_path(), ec);
    AtomicFile f(file);
    f.write(&h, sizeof h);
    f.write(path.data(), path.size());
    f.write(raw.data(), n * 2);
    f.commit();
    ++stores_;
  } catch (const std::exception& e) {
    if (!warned_.exchange(true))
      std::fprintf(stderr, "feature cache: cannot write %s (%s); continuing without storing\n", file.c_str(), e.what());
  }
}

void FeatureCache::round_bf16(float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) x[i] = bf16_to_f32(f32_to_bf16(x[i]));
}

}  // namespace tv
