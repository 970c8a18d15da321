#include "io/parquet_source.h"

#include <glob.h>

#include <algorithm>
#include <filesystem>

#include "core/error.h"

namespace tv {
namespace fs = std::filesystem;

bool is_parquet_path(const std::string& path) {
  if (path.size() < 8) return false;
  std::string ext = path.substr(path.size() - 8);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return ext == ".parquet";
}

bool has_glob_chars(const std::string& s) { return s.find_first_of("*?[") != std::string::npos; }

namespace {

std::vector<std::string> folder_parquet(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file() && is_parquet_path(e.path().string())) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> glob_files(const std::string& pattern) {
  std::vector<std::string> out;
  glob_t g{};
  if (::glob(pattern.c_str(), 0, nullptr, &g) == 0)
    for (size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
  globfree(&g);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

bool is_parquet_input(const std::string& input) {
  if (is_parquet_path(input)) return true;
  if (has_glob_chars(input) && !fs::exists(input)) {
    for (const std::string& f : glob_files(input))
      if (is_parquet_path(f)) return true;
    return false;
  }
  std::error_code ec;
  return fs::is_directory(input, ec) && !folder_parquet(input).empty();
}

std::vector<std::string> parquet_files(const std::string& input) {
  std::error_code ec;
  if (fs::is_directory(input, ec)) {
    std::vector<std::string> f = folder_parquet(input);
    if (f.empty()) fail(input, ": the folder holds no .parquet files");
    return f;
  }
  if (has_glob_chars(input) && !fs::exists(input)) {
    std::vector<std::string> f = glob_files(input);
    if (f.empty()) fail(input, ": no file matches this pattern");
    return f;
  }
  if (!fs::is_regular_file(input)) fail(input, ": no such file");
  return {input};
}

std::vector<std::string> expand_inputs(const std::vector<std::string>& inputs) {
  std::vector<std::string> out;
  for (const std::string& in : inputs) {
    std::error_code ec;
    if ((fs::is_directory(in, ec) && !folder_parquet(in).empty()) || (has_glob_chars(in) && !fs::exists(in))) {
      std::vector<std::string> f = parquet_files(in);
      out.insert(out.end(), f.begin(), f.end());
    } else {
      out.push_back(in);  // the caller opens it and reports a missing file its own way
    }
  }
  return out;
}

ParquetRowReader::ParquetRowReader(std::vector<std::string> files, std::vector<std::string> fields)
    : files_(std::move(files)), fields_(std::move(fields)) {
  for (const std::string& f : files_) {
    std::error_code ec;
    const auto n = fs::file_size(f, ec);
    if (ec) fail(f, ": cannot open the Parquet file");
    total_bytes_ += uint64_t(n);
  }
}

ParquetRowReader::~ParquetRowReader() = default;

bool ParquetRowReader::open_next_file() {
  if (file_) done_bytes_ += file_->file_size();
  groups_.clear();  // their values point into the file about to close
  file_.reset();
  if (file_index_ >= files_.size()) return false;
  file_ = std::make_unique<pq::ParquetFile>(files_[file_index_++]);
  for (const std::string& f : fields_)
    if (file_->find_field(f) < 0)
      fail(file_->path(), ": no column '", f, "' (footer at byte ", file_->footer_offset(), "; the file has: ",
           pq::field_names(*file_), ")");
  group_ = -1;
  return true;
}

bool ParquetRowReader::next_group() {
  rows_done_ += rows_;
  rows_ = 0;
  for (;;) {
    if (!file_ || group_ + 1 >= file_->num_row_groups()) {
      if (!open_next_file()) return false;
      continue;
    }
    ++group_;
    if (file_->row_group_rows(group_) == 0) continue;
    groups_.clear();
    for (const std::string& f : fields_) groups_.push_back(pq::read_field(*file_, group_, f));
    rows_ = size_t(file_->row_group_rows(group_));
    return true;
  }
}

std::string ParquetRowReader::where(size_t row) const {
  return str_cat(file_ ? file_->path() : std::string("?"), ", row group ", group_, ", row ", row);
}

uint64_t ParquetRowReader::bytes_done() const {
  if (!file_ || file_->num_row_groups() == 0) return done_bytes_;
  return done_bytes_ + file_->file_size() * uint64_t(group_ + 1) / uint64_t(file_->num_row_groups());
}

std::vector<std::string> parquet_texts(const std::vector<std::string>& files, const std::string& column) {
  std::vector<std::string> out;
  for (const std::string& f : files) pq::require_text_field(pq::ParquetFile(f), column);
  ParquetRowReader rows(files, {column});
  while (rows.next_group())
    for (size_t r = 0; r < rows.rows(); ++r)
      for (std::string_view t : pq::as_texts(rows.value(0, r), rows.where(r))) out.emplace_back(t);
  return out;
}

}  // namespace tv
