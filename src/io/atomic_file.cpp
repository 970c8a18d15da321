#include "io/atomic_file.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace tv {

AtomicFile::AtomicFile(const std::string& path) : path_(path), tmp_(path + ".tmp") {
  f_ = std::fopen(tmp_.c_str(), "wb");
  if (!f_) {
    // Named as the user gave it (the temporary name is ours), with the usual cause spelled out.
    const int err = errno;
    const std::string parent = std::filesystem::path(path_).parent_path().string();
    std::error_code ec;
    if (err == ENOENT && !parent.empty() && !std::filesystem::is_directory(parent, ec))
      fail(path_, ": cannot write: the folder ", parent, " does not exist");
    fail(path_, ": cannot write (", std::strerror(err), ")");
  }
}

AtomicFile::~AtomicFile() {
  if (f_) {
    std::fclose(f_);
    std::remove(tmp_.c_str());
  }
}

void AtomicFile::write(const void* data, size_t bytes) {
  if (bytes && std::fwrite(data, 1, bytes, f_) != bytes) fail(path_, ": write failed (", std::strerror(errno), ")");
}

void AtomicFile::commit() {
  if (std::fflush(f_) != 0 || ::fsync(fileno(f_)) != 0) fail(path_, ": write failed (", std::strerror(errno), ")");
  std::fclose(f_);
  f_ = nullptr;
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    std::remove(tmp_.c_str());
    fail(path_, ": rename from ", tmp_, " failed (", std::strerror(errno), ")");
  }
}

void write_file_atomic(const std::string& path, const std::string& contents) {
  AtomicFile f(path);
  f.write(contents);
  f.commit();
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, ": cannot open for reading");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace tv
