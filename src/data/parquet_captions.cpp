#include "data/parquet_captions.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <unordered_map>

#include "core/error.h"
#include "io/parquet_source.h"

namespace tv {
namespace fs = std::filesystem;

namespace {

uint64_t fnv1a64(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

const char* image_ext(std::string_view b) {
  if (b.size() >= 3 && uint8_t(b[0]) == 0xFF && uint8_t(b[1]) == 0xD8) return ".jpg";
  if (b.size() >= 8 && b.substr(0, 8) == std::string_view("\x89PNG\r\n\x1a\n", 8)) return ".png";
  return ".img";
}

}  // namespace

std::string extract_parquet_image(const std::string& dir, std::string_view bytes) {
  char name[64];
  std::snprintf(name, sizeof(name), "%016llx-%zu%s", (unsigned long long)fnv1a64(bytes), bytes.size(), image_ext(bytes));
  const std::string path = (fs::path(dir) / name).string();
  std::error_code ec;
  if (fs::is_regular_file(path, ec) && fs::file_size(path, ec) == bytes.size()) return path;
  const std::string tmp = path + ".tmp" + std::to_string(getpid());
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail(tmp, ": cannot write an extracted image (choose a writable folder with --images)");
  const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  if (std::fclose(f) != 0 || !ok) {
    std::remove(tmp.c_str());
    fail(tmp, ": cannot write an extracted image (disk full?)");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    fail(path, ": cannot rename the extracted image into place");
  }
  return path;
}

namespace {

std::string pick_image_column(const pq::ParquetFile& f, const std::string& asked) {
  if (!asked.empty()) return asked;
  const std::vector<std::string> found = pq::image_fields(f);
  if (found.size() == 1) return found[0];
  for (const std::string& s : found)
    if (s == "image") return s;
  if (found.empty())
    fail(f.path(), ": no image column found (no Image feature in the huggingface metadata, no {bytes, path} struct); "
         "name it with --image-column (the file has: ", pq::field_names(f), ")");
  std::string list;
  for (const std::string& s : found) list += (list.empty() ? "" : ", ") + s;
  fail(f.path(), ": several image columns (", list, "); choose one with --image-column");
}

std::string pick_caption_column(const pq::ParquetFile& f, const std::string& asked) {
  if (!asked.empty()) return asked;
  for (const char* c : {"caption", "captions", "sentences", "text"})
    if (f.find_field(c) >= 0) return c;
  fail(f.path(), ": no caption column (caption, captions, sentences or text); name it with --caption-column (the file has: ",
       pq::field_names(f), ")");
}

}  // namespace

CaptionSet load_parquet_captions(const std::vector<std::string>& files, const ParquetCaptionOptions& opt) {
  if (files.empty()) fail("no Parquet caption files");
  CaptionSet set;
  set.source = files[0];
  std::string image_col, caption_col;
  {
    const pq::ParquetFile first(files[0]);
    image_col = pick_image_column(first, opt.image_column);
    caption_col = pick_caption_column(first, opt.caption_column);
  }
  for (const std::string& f : files) pq::require_text_field(pq::ParquetFile(f), caption_col);
  const std::string dir =
      opt.extract_dir.empty() ? (fs::path(files[0]).parent_path() / "tinyvlm_images").string() : opt.extract_dir;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!fs::is_directory(dir)) fail(dir, ": cannot create the folder for the extracted images (choose one with --images)");

  std::unordered_map<std::string, int32_t> index;  // extracted path -> image index
  int64_t no_image = 0;
  ParquetRowReader rows(files, {image_col, caption_col});
  while (rows.next_group()) {
    const std::string base = fs::path(rows.file().path()).parent_path().string();
    for (size_t r = 0; r < rows.rows(); ++r) {
      const std::string where = rows.where(r);
      std::vector<pq::ImageRef> ims = pq::as_images(rows.value(0, r), where + ", column '" + image_col + "'");
      std::string path;
      if (!ims.empty() && !ims[0].bytes.empty()) {
        path = extract_parquet_image(dir, ims[0].bytes);
      } else if (!ims.empty() && !ims[0].path.empty()) {
        // datasets' Image with only a path: a file on disk, relative to the Parquet file's folder.
        const fs::path p(std::string(ims[0].path));
        path = p.is_absolute() ? p.string() : (fs::path(base) / p).string();
      } else {
        ++no_image;
        continue;
      }
      auto [it, fresh] = index.emplace(path, int32_t(set.images.size()));
      if (fresh) set.images.push_back(path);
      for (std::string_view c : pq::as_texts(rows.value(1, r), where + ", column '" + caption_col + "'"))
        set.samples.push_back({it->second, std::string(c)});
    }
  }
  if (no_image > 0)
    std::fprintf(stderr, "tinyvlm: warning: %s: %lld row(s) without an image were skipped\n", files[0].c_str(),
                 (long long)no_image);
  return set;
}

}  // namespace tv
