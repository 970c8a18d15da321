// Write-then-rename: data goes to "<path>.tmp", is flushed and fsync'ed, and only commit() renames it
// over <path>. Destroying an uncommitted AtomicFile removes the temporary file, so the old file survives.
#pragma once
#include <cstdio>
#include <string>

namespace tv {

class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  void write(const void* data, size_t bytes);
  void write(const std::string& s) { write(s.data(), s.size()); }
  void commit();

 private:
  std::string path_, tmp_;
  std::FILE* f_ = nullptr;
};

// Convenience: atomically replaces the file with `contents`.
void write_file_atomic(const std::string& path, const std::string& contents);
std::string read_file(const std::string& path);

}  // namespace tv
