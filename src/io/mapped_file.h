// Read-only memory map of a whole file (empty files map to an empty view).
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace tv {

class MappedFile {
 public:
  MappedFile() = default;
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const char* data() const { return data_; }
  size_t size() const { return size_; }
  std::string_view view() const { return {data_, size_}; }
  const std::string& path() const { return path_; }

 private:
  void release();
  std::string path_;
  const char* data_ = nullptr;
  size_t size_ = 0;
  void* map_ = nullptr;
};

}  // namespace tv
