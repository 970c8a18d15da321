#include "io/zip_reader.h"

#include <algorithm>
#include <set>

#include "core/error.h"

namespace tv {
namespace {

constexpr uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEndSig = 0x06054b50;
constexpr uint32_t kEnd64Sig = 0x06064b50, kLocator64Sig = 0x07064b50;
constexpr size_t kEndSize = 22, kLocator64Size = 20, kEnd64Size = 56, kCentralSize = 46, kLocalSize = 30;

// Little-endian reads from the archive; callers check bounds first.
struct Bytes {
  const unsigned char* p;
  uint64_t u16(uint64_t at) const { return uint64_t(p[at]) | uint64_t(p[at + 1]) << 8; }
  uint64_t u32(uint64_t at) const { return u16(at) | u16(at + 2) << 16; }
  uint64_t u64(uint64_t at) const { return u32(at) | u32(at + 4) << 32; }
};

// begin + len <= limit, without overflow.
bool fits(uint64_t begin, uint64_t len, uint64_t limit) { return begin <= limit && len <= limit - begin; }

}  // namespace

std::vector<ZipEntry> read_zip_directory(const std::string& path, const unsigned char* data, size_t size) {
  auto bad = [&](uint64_t at, const auto&... what) {
    fail(path, ": zip archive at byte ", at, ": ", what...);
  };
  const Bytes b{data};
  if (size < kEndSize)
    fail(path, ": ", size, " bytes is too short for a zip archive (it ends with a 22-byte end-of-central-directory "
               "record)");

  // The end-of-central-directory record: the last signature within the final 22 + 65535 bytes (the comment
  // may hold up to 65535 bytes).
  uint64_t end = size - kEndSize;
  const uint64_t lowest = size - kEndSize > 65535 ? size - kEndSize - 65535 : 0;
  while (b.u32(end) != kEndSig) {
    if (end == lowest)
      fail(path, ": no zip end-of-central-directory record (signature PK\\x05\\x06) in bytes ", lowest, " to ", size,
           ", the end of the file: not a zip archive, or a truncated one");
    --end;
  }
  if (!fits(end + kEndSize, b.u16(end + 20), size))
    bad(end + 20, "the archive comment of ", b.u16(end + 20), " bytes runs past the end of the file (", size, " bytes)");
  uint64_t disk = b.u16(end + 4), cd_disk = b.u16(end + 6), count_disk = b.u16(end + 8);
  uint64_t count = b.u16(end + 10), cd_size = b.u32(end + 12), cd_offset = b.u32(end + 16);
  uint64_t cd_limit = end;  // the central directory must end before the record that describes it

  // Zip64: a locator right before the record points at the zip64 end-of-central-directory record, whose
  // 64-bit fields replace the saturated 16- and 32-bit ones.
  const bool saturated = count == 0xffff || count_disk == 0xffff || cd_size == 0xffffffff || cd_offset == 0xffffffff;
  if (end >= kLocator64Size && b.u32(end - kLocator64Size) == kLocator64Sig) {
    const uint64_t loc = end - kLocator64Size;
    if (b.u32(loc + 4) != 0 || b.u32(loc + 16) > 1)
      bad(loc, "the zip64 locator names disk ", b.u32(loc + 4), " of ", b.u32(loc + 16),
          "; expected a single-disk archive");
    const uint64_t rec = b.u64(loc + 8);
    if (!fits(rec, kEnd64Size, loc))
      bad(loc + 8, "the zip64 locator points at byte ", rec, "; expected a zip64 end-of-central-directory record "
                   "(56 bytes) before the locator at byte ", loc);
    if (b.u32(rec) != kEnd64Sig)
      bad(rec, "expected the zip64 end-of-central-directory signature PK\\x06\\x06 (named by the locator at byte ",
          loc, ")");
    disk = b.u32(rec + 16);
    cd_disk = b.u32(rec + 20);
    count_disk = b.u64(rec + 24);
    count = b.u64(rec + 32);
    cd_size = b.u64(rec + 40);
    cd_offset = b.u64(rec + 48);
    cd_limit = rec;
  } else if (saturated) {
    bad(end, "the end-of-central-directory record has saturated (zip64) fields but no zip64 locator precedes it at "
             "byte ", end >= kLocator64Size ? end - kLocator64Size : 0);
  }
  if (disk != 0 || cd_disk != 0 || count_disk != count)
    bad(end, "the archive spans several disks (disk ", disk, ", directory on disk ", cd_disk, ", ", count_disk, " of ",
        count, " entries on this disk); expected a single-file archive");
  if (!fits(cd_offset, cd_size, cd_limit))
    bad(end, "the central directory (", cd_size, " bytes at byte ", cd_offset,
        ") does not fit before the end-of-central-directory record at byte ", cd_limit);
  // Each entry takes at least 46 bytes, so a huge count in a small directory is malformed (and no reserve()
  // of it is ever attempted).
  if (count > cd_size / kCentralSize)
    bad(end, count, " entries cannot fit a central directory of ", cd_size, " bytes");

  std::vector<ZipEntry> entries;
  entries.reserve(size_t(count));
  std::set<std::string> seen;
  const uint64_t cd_end = cd_offset + cd_size;
  uint64_t at = cd_offset;
  for (uint64_t i = 0; i < count; ++i) {
    if (!fits(at, kCentralSize, cd_end))
      bad(at, "central directory entry ", i, " of ", count, " runs past the directory's end at byte ", cd_end);
    if (b.u32(at) != kCentralSig)
      bad(at, "expected the central directory signature PK\\x01\\x02 of entry ", i, " of ", count);
    const uint64_t flags = b.u16(at + 8), method = b.u16(at + 10);
    uint64_t csize = b.u32(at + 20), usize = b.u32(at + 24);
    const uint64_t name_len = b.u16(at + 28), extra_len = b.u16(at + 30), comment_len = b.u16(at + 32);
    uint64_t start_disk = b.u16(at + 34), header = b.u32(at + 42);
    if (!fits(at + kCentralSize, name_len + extra_len + comment_len, cd_end))
      bad(at, "the name, extra field and comment of entry ", i, " (", name_len + extra_len + comment_len,
          " bytes) run past the central directory's end at byte ", cd_end);
    ZipEntry e;
    e.name.assign(reinterpret_cast<const char*>(data + at + kCentralSize), size_t(name_len));

    // The zip64 extra field (id 1) holds, in this order, whichever of the four fields are saturated.
    const uint64_t extra = at + kCentralSize + name_len;
    for (uint64_t x = extra; x < extra + extra_len;) {
      if (!fits(x, 4, extra + extra_len)) bad(x, "truncated extra field header in entry '", e.name, "'");
      const uint64_t id = b.u16(x), len = b.u16(x + 2);
      if (!fits(x + 4, len, extra + extra_len))
        bad(x, "extra field of ", len, " bytes runs past the extra data of entry '", e.name, "'");
      if (id == 1) {
        uint64_t f = x + 4;
        auto take = [&](uint64_t& v, uint64_t width, uint64_t saturated_value) {
          if (v != saturated_value) return;
          if (!fits(f, width, x + 4 + len))
            bad(f, "the zip64 extra field of entry '", e.name, "' is ", len, " bytes, too short for its saturated fields");
          v = width == 8 ? b.u64(f) : b.u32(f);
          f += width;
        };
        take(usize, 8, 0xffffffff);
        take(csize, 8, 0xffffffff);
        take(header, 8, 0xffffffff);
        take(start_disk, 4, 0xffff);
      }
      x += 4 + len;
    }
    if (start_disk != 0) bad(at, "entry '", e.name, "' starts on disk ", start_disk, "; expected a single-disk archive");
    if (flags & 1) bad(at, "entry '", e.name, "' is encrypted; expected plain stored data");
    if (method != 0)
      bad(at, "entry '", e.name, "' is compressed (method ", method, method == 8 ? ", deflate" : "",
          "); expected stored (method 0) data, as torch.save writes it");
    if (csize != usize)
      bad(at, "stored entry '", e.name, "' has compressed size ", csize, " but uncompressed size ", usize);

    // The local header repeats the name and may carry its own extra field (torch.save pads with it so that
    // the data is aligned); the data follows it.
    if (!fits(header, kLocalSize, cd_offset))
      bad(at + 42, "entry '", e.name, "' names a local header at byte ", header,
          ", which does not lie before the central directory at byte ", cd_offset);
    if (b.u32(header) != kLocalSig) bad(header, "expected the local header signature PK\\x03\\x04 of entry '", e.name, "'");
    const uint64_t lname = b.u16(header + 26), lextra = b.u16(header + 28);
    if (lname != name_len || !fits(header + kLocalSize, lname, cd_offset) ||
        !std::equal(e.name.begin(), e.name.end(), data + header + kLocalSize))
      bad(header, "the local header's name does not match the central directory's '", e.name, "'");
    e.header_offset = header;
    e.begin = header + kLocalSize + lname + lextra;
    e.size = usize;
    if (!fits(e.begin, e.size, cd_offset))
      bad(e.begin, "the ", e.size, " bytes of entry '", e.name, "' run past the central directory at byte ", cd_offset);
    if (!seen.insert(e.name).second) bad(at, "duplicate entry '", e.name, "'");
    entries.push_back(std::move(e));
    at += kCentralSize + name_len + extra_len + comment_len;
  }
  return entries;
}

}  // namespace tv
