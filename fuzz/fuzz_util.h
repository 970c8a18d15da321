// Shared by the harnesses: most parsers read files (memory-mapped), so the input goes to a temporary
// file first, one per process, reused for every input.
#pragma once
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace tv::fuzz {

inline std::string input_file(const uint8_t* data, size_t size, const char* suffix) {
  static std::string dir;
  if (dir.empty()) {
    const char* t = std::getenv("TMPDIR");
    dir = std::string(t && *t ? t : "/tmp") + "/tinyvlm_fuzz_" + std::to_string(getpid());
    mkdir(dir.c_str(), 0700);
  }
  std::string path = dir + "/input" + suffix;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) __builtin_trap();
  if (size) std::fwrite(data, 1, size, f);
  std::fclose(f);
  return path;
}

}  // namespace tv::fuzz
