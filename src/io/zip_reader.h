// The central directory of a zip archive held in memory (a memory-mapped file), as torch.save writes it:
// every entry stored uncompressed (method 0), so each entry's data is a byte range of the file itself.
// Zip64 records and fields (which torch.save always writes) are read. Compressed or encrypted entries,
// multi-disk archives and malformed structures are errors naming the file, the byte offset and what was
// expected there.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace tv {

struct ZipEntry {
  std::string name;
  uint64_t begin = 0, size = 0;  // the entry's data: bytes [begin, begin + size) of the file
  uint64_t header_offset = 0;    // its local file header
};

// `path` only names the archive in errors. Entries come in central-directory order; names are unique.
std::vector<ZipEntry> read_zip_directory(const std::string& path, const unsigned char* data, size_t size);

}  // namespace tv
