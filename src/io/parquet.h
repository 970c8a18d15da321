// A Parquet file reader (parquet-format 2.x), written for HuggingFace datasets: the footer and page headers
// in Thrift compact, data pages v1 and v2, dictionary pages, PLAIN / RLE / bit-packed / RLE_DICTIONARY /
// PLAIN_DICTIONARY / DELTA_* / BYTE_STREAM_SPLIT encodings, definition and repetition levels for structs and
// lists, and the codecs UNCOMPRESSED, SNAPPY, GZIP and ZSTD. Statistics, page indexes and bloom filters are
// ignored. It reads one column chunk of one row group at a time (memory is bounded by a row group, not the
// file) and checks every offset and length against the file before using it. Errors name the file, row
// group, column and byte offset. See docs/parquet.md.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "io/mapped_file.h"
#include "io/parquet_encodings.h"
#include "io/parquet_meta.h"

namespace tv::pq {

// One node of the schema tree (the footer's flattened schema, with its structure made explicit).
struct SchemaNode {
  const SchemaElement* element = nullptr;
  int parent = -1;
  std::vector<int> children;  // node indices
  int16_t max_def = 0, max_rep = 0;  // levels at this node (counting itself)
  int leaf = -1;                     // column index for leaves
  bool is_list = false;              // a LIST-annotated group
  bool is_map = false;               // a MAP-annotated group
};

// One leaf column.
struct ColumnInfo {
  std::string path;                   // dotted: "images.list.element.bytes"
  std::vector<std::string> parts;     // path_in_schema
  int node = 0;                       // index into ParquetFile::nodes()
  PhysicalType type = PhysicalType::Boolean;
  int32_t type_length = 0;
  int16_t max_def = 0, max_rep = 0;
  bool utf8 = false;                  // STRING / UTF8 annotation
};

// One column chunk, decoded: a definition and a repetition level per entry (empty when the column's maximum
// is 0), and a value for each entry whose definition level is the maximum. Strings point into the mapped
// file or into values.buffers, so they live as long as this object and its ParquetFile.
struct ColumnData {
  int column = -1;
  int16_t max_def = 0, max_rep = 0;
  size_t entries = 0;
  std::vector<int16_t> def, rep;
  ValueSink values;
};

class ParquetFile {
 public:
  explicit ParquetFile(const std::string& path);
  ParquetFile(ParquetFile&&) noexcept = default;

  const std::string& path() const { return file_.path(); }
  uint64_t file_size() const { return file_.size(); }
  uint64_t footer_offset() const { return footer_offset_; }
  const FileMeta& meta() const { return meta_; }
  int64_t num_rows() const { return meta_.num_rows; }
  int num_row_groups() const { return int(meta_.row_groups.size()); }
  int64_t row_group_rows(int g) const { return meta_.row_groups[size_t(g)].num_rows; }

  const std::vector<SchemaNode>& nodes() const { return nodes_; }  // [0] is the root
  const std::vector<ColumnInfo>& columns() const { return columns_; }
  int find_column(std::string_view dotted_path) const;  // -1 when absent
  int find_field(std::string_view name) const;          // a top-level field's node index, -1 when absent
  const std::string* key_value(std::string_view key) const;  // footer key-value metadata, null when absent

  // Decodes column `column` of row group `group`. Throws tv::Error naming file, row group, column, offset.
  ColumnData read_column(int group, int column) const;

  // The schema as indented text ("name: type, repetition"), one node a line.
  std::string schema_text() const;
  // "file, row group G, column 'path'": the start of every error about a column chunk.
  std::string where(int group, int column) const;
  // The same with the chunk's first byte: "..., chunk at byte N".
  std::string where_chunk(int group, int column) const;

 private:
  void build_schema();
  void check_row_groups();

  MappedFile file_;
  uint64_t footer_offset_ = 0;
  FileMeta meta_;
  std::vector<SchemaNode> nodes_;
  std::vector<ColumnInfo> columns_;
};

}  // namespace tv::pq
