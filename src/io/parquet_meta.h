// Parquet file metadata (the footer) and page headers, decoded from Thrift compact (parquet-format's
// parquet.thrift). Only the fields a reader needs are kept; statistics, indexes and bloom filters are skipped.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tv::pq {

enum class PhysicalType : int32_t {
  Boolean = 0, Int32 = 1, Int64 = 2, Int96 = 3, Float = 4, Double = 5, ByteArray = 6, FixedLenByteArray = 7,
};
enum class Repetition : int32_t { Required = 0, Optional = 1, Repeated = 2 };
enum class Codec : int32_t { Uncompressed = 0, Snappy = 1, Gzip = 2, Lzo = 3, Brotli = 4, Lz4 = 5, Zstd = 6, Lz4Raw = 7 };
enum class Encoding : int32_t {
  Plain = 0, PlainDictionary = 2, Rle = 3, BitPacked = 4, DeltaBinaryPacked = 5, DeltaLengthByteArray = 6,
  DeltaByteArray = 7, RleDictionary = 8, ByteStreamSplit = 9,
};
enum class PageType : int32_t { DataPage = 0, IndexPage = 1, DictionaryPage = 2, DataPageV2 = 3 };

const char* type_name(PhysicalType t);
const char* codec_name(Codec c);
const char* encoding_name(Encoding e);

struct SchemaElement {
  std::string name;
  bool has_type = false;  // leaves have a physical type, groups have children
  PhysicalType type = PhysicalType::Boolean;
  int32_t type_length = 0;
  Repetition repetition = Repetition::Required;
  int32_t num_children = 0;
  int32_t converted_type = -1;  // -1: none (UTF8 = 0, MAP = 1, MAP_KEY_VALUE = 2, LIST = 3)
  int32_t logical_type = -1;    // the LogicalType union's field id, -1: none (STRING = 1, MAP = 2, LIST = 3)
};

struct ColumnMeta {
  PhysicalType type = PhysicalType::Boolean;
  std::vector<std::string> path;
  Codec codec = Codec::Uncompressed;
  std::vector<Encoding> encodings;
  int64_t num_values = 0;
  int64_t total_uncompressed_size = 0;
  int64_t total_compressed_size = 0;
  int64_t data_page_offset = 0;
  int64_t dictionary_page_offset = -1;  // -1: none
};

struct ColumnChunkMeta {
  bool has_meta = false;
  bool external = false;  // file_path set: the data live in another file (refused when read)
  ColumnMeta meta;
};

struct RowGroupMeta {
  std::vector<ColumnChunkMeta> columns;
  int64_t num_rows = 0;
  int64_t total_byte_size = 0;
};

struct FileMeta {
  int32_t version = 0;
  std::vector<SchemaElement> schema;  // depth-first, [0] is the root
  int64_t num_rows = 0;
  std::vector<RowGroupMeta> row_groups;
  std::vector<std::pair<std::string, std::string>> key_value;
  std::string created_by;
  bool encrypted = false;
};

struct PageHeader {
  PageType type = PageType::DataPage;
  int32_t uncompressed_size = 0;
  int32_t compressed_size = 0;
  // DATA_PAGE / DATA_PAGE_V2 / DICTIONARY_PAGE (whichever `type` names)
  int32_t num_values = 0;
  Encoding encoding = Encoding::Plain;
  Encoding def_encoding = Encoding::Rle, rep_encoding = Encoding::Rle;  // v1
  int32_t num_nulls = 0, num_rows = 0;                                 // v2
  int32_t def_bytes = 0, rep_bytes = 0;                                // v2: level sections' lengths
  bool is_compressed = true;                                           // v2
  bool has_page_header = false;  // the sub-header for `type` was present
};

// Decode the footer (the bytes between the data and the trailing length + "PAR1"); `base` is its offset in
// the file, so errors name file offsets. Throws tv::Error prefixed by `where`.
FileMeta decode_file_meta(std::string_view footer, uint64_t base, const std::string& where);

// Decode one page header at the start of `buf`; returns its length in bytes.
size_t decode_page_header(std::string_view buf, uint64_t base, const std::string& where, PageHeader& out);

}  // namespace tv::pq
