// Parquet inputs for the data loaders: expanding a file / folder / glob into .parquet files, and a row
// reader that streams chosen top-level fields one row group at a time (the HuggingFace layouts described in
// docs/parquet.md). Loaders for instruct and DPO data read their rows through ParquetRowReader.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/parquet.h"
#include "io/parquet_rows.h"

namespace tv {

bool is_parquet_path(const std::string& path);  // ends with .parquet (any case)
bool has_glob_chars(const std::string& s);      // contains *, ? or [

// True when `input` names Parquet data: a .parquet file, a glob matching one, or a folder holding them.
bool is_parquet_input(const std::string& input);

// A .parquet file as is; a folder: its *.parquet files (not recursive), sorted; a glob: its matches, sorted.
// Errors name the input when nothing matches.
std::vector<std::string> parquet_files(const std::string& input);

// Every input expanded: folders holding Parquet files become those files, globs their matches (of any
// kind, sorted); other paths pass through unchanged (the caller checks them).
std::vector<std::string> expand_inputs(const std::vector<std::string>& inputs);

// Streams rows of one or more Parquet files: next_group() loads the asked-for top-level fields of the next
// row group (empty groups are passed over); value(f, r) is field f (in the order asked) of row r. Only one
// row group's columns are held at a time. A missing field is an error naming the file and its fields.
//
//   ParquetRowReader rows(files, {"chosen", "rejected", "images"});
//   while (rows.next_group())
//     for (size_t r = 0; r < rows.rows(); ++r) {
//       const pq::Value& chosen = rows.value(0, r);  // list of {role, content: list of {type, text}}
//       for (const pq::ImageRef& im : pq::as_images(rows.value(2, r), rows.where(r))) use(im.bytes);
//     }
class ParquetRowReader {
 public:
  ParquetRowReader(std::vector<std::string> files, std::vector<std::string> fields);
  ~ParquetRowReader();

  bool next_group();
  size_t rows() const { return rows_; }
  const pq::Value& value(size_t field, size_t row) const { return groups_[field].rows[row]; }
  const pq::ParquetFile& file() const { return *file_; }
  int group() const { return group_; }
  std::string where(size_t row) const;  // "file, row group G, row R"
  uint64_t rows_done() const { return rows_done_; }  // rows of the groups before the current one
  // Approximate input bytes consumed (whole files done + this file's share of groups done), for progress.
  uint64_t bytes_done() const;
  uint64_t total_bytes() const { return total_bytes_; }

 private:
  bool open_next_file();
  std::vector<std::string> files_, fields_;
  size_t file_index_ = 0;
  std::unique_ptr<pq::ParquetFile> file_;
  int group_ = -1;
  std::vector<pq::FieldValues> groups_;
  size_t rows_ = 0;
  uint64_t rows_done_ = 0, total_bytes_ = 0, done_bytes_ = 0;
};

// The texts of field `column` of every row (a string, or a list of strings: one text per element; nulls
// skipped), all files, in order. For small inputs; big ones stream with ParquetRowReader.
std::vector<std::string> parquet_texts(const std::vector<std::string>& files, const std::string& column);

}  // namespace tv
