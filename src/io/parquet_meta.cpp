#include "io/parquet_meta.h"

#include "core/error.h"
#include "io/thrift_compact.h"

namespace tv::pq {

using thrift::CompactReader;
using thrift::FieldHeader;

const char* type_name(PhysicalType t) {
  switch (t) {
    case PhysicalType::Boolean: return "BOOLEAN";
    case PhysicalType::Int32: return "INT32";
    case PhysicalType::Int64: return "INT64";
    case PhysicalType::Int96: return "INT96";
    case PhysicalType::Float: return "FLOAT";
    case PhysicalType::Double: return "DOUBLE";
    case PhysicalType::ByteArray: return "BYTE_ARRAY";
    case PhysicalType::FixedLenByteArray: return "FIXED_LEN_BYTE_ARRAY";
  }
  return "?";
}

const char* codec_name(Codec c) {
  switch (c) {
    case Codec::Uncompressed: return "UNCOMPRESSED";
    case Codec::Snappy: return "SNAPPY";
    case Codec::Gzip: return "GZIP";
    case Codec::Lzo: return "LZO";
    case Codec::Brotli: return "BROTLI";
    case Codec::Lz4: return "LZ4";
    case Codec::Zstd: return "ZSTD";
    case Codec::Lz4Raw: return "LZ4_RAW";
  }
  return "?";
}

const char* encoding_name(Encoding e) {
  switch (e) {
    case Encoding::Plain: return "PLAIN";
    case Encoding::PlainDictionary: return "PLAIN_DICTIONARY";
    case Encoding::Rle: return "RLE";
    case Encoding::BitPacked: return "BIT_PACKED";
    case Encoding::DeltaBinaryPacked: return "DELTA_BINARY_PACKED";
    case Encoding::DeltaLengthByteArray: return "DELTA_LENGTH_BYTE_ARRAY";
    case Encoding::DeltaByteArray: return "DELTA_BYTE_ARRAY";
    case Encoding::RleDictionary: return "RLE_DICTIONARY";
    case Encoding::ByteStreamSplit: return "BYTE_STREAM_SPLIT";
  }
  return "?";
}

namespace {

// An enum field, range-checked so the switch statements above stay total.
template <typename E>
E read_enum(CompactReader& r, int32_t lo, int32_t hi, const char* what) {
  const int32_t v = r.read_i32();
  if (v < lo || v > hi) r.error(str_cat("unknown ", what, " ", v));
  return E(v);
}

Encoding read_encoding(CompactReader& r) {
  const int32_t v = r.read_i32();
  if (v < 0 || v > 9 || v == 1) r.error(str_cat("unknown encoding ", v));
  return Encoding(v);
}

// Reads a struct whose fields `on_field` handles (returning false to skip a field).
template <typename F>
void read_struct(CompactReader& r, F&& on_field) {
  r.begin_struct();
  for (;;) {
    const FieldHeader f = r.read_field();
    if (f.type == thrift::kStop) break;
    if (!on_field(f)) r.skip(f.type);
  }
  r.end_struct();
}

// The field must have the expected wire type; a mismatch would misread every following byte.
void expect(CompactReader& r, const FieldHeader& f, uint8_t type, const char* name) {
  const bool ok = f.type == type || (type == thrift::kI32 && f.type == thrift::kI16) ||
                  (type == thrift::kList && f.type == thrift::kSet);
  if (!ok) r.error(str_cat("field ", name, " has wire type ", int(f.type), ", expected ", int(type)));
}

int32_t read_logical_type(CompactReader& r) {
  int32_t id = -1;
  read_struct(r, [&](const FieldHeader& f) {
    id = f.id;
    return false;  // the member's own struct (e.g. DecimalType's scale) is skipped
  });
  return id;
}

SchemaElement read_schema_element(CompactReader& r) {
  SchemaElement e;
  bool has_name = false;
  read_struct(r, [&](const FieldHeader& f) {
    switch (f.id) {
      case 1: expect(r, f, thrift::kI32, "SchemaElement.type"); e.type = read_enum<PhysicalType>(r, 0, 7, "physical type"); e.has_type = true; return true;
      case 2: expect(r, f, thrift::kI32, "SchemaElement.type_length"); e.type_length = r.read_i32(); return true;
      case 3: expect(r, f, thrift::kI32, "SchemaElement.repetition_type"); e.repetition = read_enum<Repetition>(r, 0, 2, "repetition type"); return true;
      case 4: expect(r, f, thrift::kBinary, "SchemaElement.name"); e.name = std::string(r.read_binary()); has_name = true; return true;
      case 5: expect(r, f, thrift::kI32, "SchemaElement.num_children"); e.num_children = r.read_i32(); return true;
      case 6: expect(r, f, thrift::kI32, "SchemaElement.converted_type"); e.converted_type = r.read_i32(); return true;
      case 10: expect(r, f, thrift::kStruct, "SchemaElement.logicalType"); e.logical_type = read_logical_type(r); return true;
      default: return false;
    }
  });
  if (!has_name) r.error("a schema element has no name");
  if (e.num_children < 0) r.error("a schema element has a negative number of children");
  return e;
}

std::vector<std::string> read_string_list(CompactReader& r) {
  const thrift::ListHeader h = r.read_list();
  if (h.elem_type != thrift::kBinary) r.error("expected a list of strings");
  std::vector<std::string> out;
  for (uint32_t i = 0; i < h.size; ++i) out.emplace_back(r.read_binary());
  return out;
}

ColumnMeta read_column_meta(CompactReader& r) {
  ColumnMeta m;
  read_struct(r, [&](const FieldHeader& f) {
    switch (f.id) {
      case 1: expect(r, f, thrift::kI32, "ColumnMetaData.type"); m.type = read_enum<PhysicalType>(r, 0, 7, "physical type"); return true;
      case 2: {
        expect(r, f, thrift::kList, "ColumnMetaData.encodings");
        const thrift::ListHeader h = r.read_list();
        if (h.elem_type != thrift::kI32) r.error("expected a list of encodings");
        for (uint32_t i = 0; i < h.size; ++i) m.encodings.push_back(read_encoding(r));
        return true;
      }
      case 3: expect(r, f, thrift::kList, "ColumnMetaData.path_in_schema"); m.path = read_string_list(r); return true;
      case 4: expect(r, f, thrift::kI32, "ColumnMetaData.codec"); m.codec = read_enum<Codec>(r, 0, 7, "compression codec"); return true;
      case 5: expect(r, f, thrift::kI64, "ColumnMetaData.num_values"); m.num_values = r.read_i64(); return true;
      case 6: expect(r, f, thrift::kI64, "ColumnMetaData.total_uncompressed_size"); m.total_uncompressed_size = r.read_i64(); return true;
      case 7: expect(r, f, thrift::kI64, "ColumnMetaData.total_compressed_size"); m.total_compressed_size = r.read_i64(); return true;
      case 9: expect(r, f, thrift::kI64, "ColumnMetaData.data_page_offset"); m.data_page_offset = r.read_i64(); return true;
      case 11: expect(r, f, thrift::kI64, "ColumnMetaData.dictionary_page_offset"); m.dictionary_page_offset = r.read_i64(); return true;
      default: return false;
    }
  });
  return m;
}

ColumnChunkMeta read_column_chunk(CompactReader& r) {
  ColumnChunkMeta c;
  read_struct(r, [&](const FieldHeader& f) {
    switch (f.id) {
      case 1: expect(r, f, thrift::kBinary, "ColumnChunk.file_path"); c.external = !r.read_binary().empty(); return true;
      case 3: expect(r, f, thrift::kStruct, "ColumnChunk.meta_data"); c.meta = read_column_meta(r); c.has_meta = true; return true;
      default: return false;
    }
  });
  return c;
}

RowGroupMeta read_row_group(CompactReader& r) {
  RowGroupMeta g;
  read_struct(r, [&](const FieldHeader& f) {
    switch (f.id) {
      case 1: {
        expect(r, f, thrift::kList, "RowGroup.columns");
        const thrift::ListHeader h = r.read_list();
        if (h.elem_type != thrift::kStruct) r.error("expected a list of column chunks");
        g.columns.reserve(h.size);
        for (uint32_t i = 0; i < h.size; ++i) g.columns.push_back(read_column_chunk(r));
        return true;
      }
      case 2: expect(r, f, thrift::kI64, "RowGroup.total_byte_size"); g.total_byte_size = r.read_i64(); return true;
      case 3: expect(r, f, thrift::kI64, "RowGroup.num_rows"); g.num_rows = r.read_i64(); return true;
      default: return false;
    }
  });
  return g;
}

std::pair<std::string, std::string> read_key_value(CompactReader& r) {
  std::pair<std::string, std::string> kv;
  read_struct(r, [&](const FieldHeader& f) {
    switch (f.id) {
      case 1: expect(r, f, thrift::kBinary, "KeyValue.key"); kv.first = std::string(r.read_binary()); return true;
      case 2: expect(r, f, thrift::kBinary, "KeyValue.value"); kv.second = std::string(r.read_binary()); return true;
      default: return false;
    }
  });
  return kv;
}

}  // namespace

FileMeta decode_file_meta(std::string_view footer, uint64_t base, const std::string& where) {
  CompactReader r(footer, base, where + ": footer");
  FileMeta m;
  bool has_schema = false, has_rows = false, has_groups = false;
  read_struct(r, [&](const FieldHeader& f) {
    switch (f.id) {
      case 1: expect(r, f, thrift::kI32, "FileMetaData.version"); m.version = r.read_i32(); return true;
      case 2: {
        expect(r, f, thrift::kList, "FileMetaData.schema");
        const thrift::ListHeader h = r.read_list();
        if (h.elem_type != thrift::kStruct) r.error("expected a list of schema elements");
        m.schema.reserve(h.size);
        for (uint32_t i = 0; i < h.size; ++i) m.schema.push_back(read_schema_element(r));
        has_schema = true;
        return true;
      }
      case 3: expect(r, f, thrift::kI64, "FileMetaData.num_rows"); m.num_rows = r.read_i64(); has_rows = true; return true;
      case 4: {
        expect(r, f, thrift::kList, "FileMetaData.row_groups");
        const thrift::ListHeader h = r.read_list();
        if (h.elem_type != thrift::kStruct) r.error("expected a list of row groups");
        m.row_groups.reserve(h.size);
        for (uint32_t i = 0; i < h.size; ++i) m.row_groups.push_back(read_row_group(r));
        has_groups = true;
        return true;
      }
      case 5: {
        expect(r, f, thrift::kList, "FileMetaData.key_value_metadata");
        const thrift::ListHeader h = r.read_list();
        if (h.elem_type != thrift::kStruct) r.error("expected a list of key-value pairs");
        for (uint32_t i = 0; i < h.size; ++i) m.key_value.push_back(read_key_value(r));
        return true;
      }
      case 6: expect(r, f, thrift::kBinary, "FileMetaData.created_by"); m.created_by = std::string(r.read_binary()); return true;
      case 8: m.encrypted = true; return false;
      default: return false;
    }
  });
  if (!has_schema || m.schema.empty()) r.error("the footer has no schema");
  if (!has_rows || m.num_rows < 0) r.error("the footer has no valid row count");
  if (!has_groups) r.error("the footer has no row-group list");
  return m;
}

size_t decode_page_header(std::string_view buf, uint64_t base, const std::string& where, PageHeader& h) {
  CompactReader r(buf, base, where + ": page header");
  h = PageHeader{};
  bool has_type = false;
  read_struct(r, [&](const FieldHeader& f) {
    switch (f.id) {
      case 1: expect(r, f, thrift::kI32, "PageHeader.type"); h.type = read_enum<PageType>(r, 0, 3, "page type"); has_type = true; return true;
      case 2: expect(r, f, thrift::kI32, "PageHeader.uncompressed_page_size"); h.uncompressed_size = r.read_i32(); return true;
      case 3: expect(r, f, thrift::kI32, "PageHeader.compressed_page_size"); h.compressed_size = r.read_i32(); return true;
      case 5:  // DataPageHeader
        expect(r, f, thrift::kStruct, "PageHeader.data_page_header");
        h.has_page_header = h.type == PageType::DataPage;
        read_struct(r, [&](const FieldHeader& g) {
          switch (g.id) {
            case 1: expect(r, g, thrift::kI32, "DataPageHeader.num_values"); h.num_values = r.read_i32(); return true;
            case 2: expect(r, g, thrift::kI32, "DataPageHeader.encoding"); h.encoding = read_encoding(r); return true;
            case 3: expect(r, g, thrift::kI32, "DataPageHeader.definition_level_encoding"); h.def_encoding = read_encoding(r); return true;
            case 4: expect(r, g, thrift::kI32, "DataPageHeader.repetition_level_encoding"); h.rep_encoding = read_encoding(r); return true;
            default: return false;
          }
        });
        return true;
      case 7:  // DictionaryPageHeader
        expect(r, f, thrift::kStruct, "PageHeader.dictionary_page_header");
        h.has_page_header = h.type == PageType::DictionaryPage;
        read_struct(r, [&](const FieldHeader& g) {
          switch (g.id) {
            case 1: expect(r, g, thrift::kI32, "DictionaryPageHeader.num_values"); h.num_values = r.read_i32(); return true;
            case 2: expect(r, g, thrift::kI32, "DictionaryPageHeader.encoding"); h.encoding = read_encoding(r); return true;
            default: return false;
          }
        });
        return true;
      case 8:  // DataPageHeaderV2
        expect(r, f, thrift::kStruct, "PageHeader.data_page_header_v2");
        h.has_page_header = h.type == PageType::DataPageV2;
        read_struct(r, [&](const FieldHeader& g) {
          switch (g.id) {
            case 1: expect(r, g, thrift::kI32, "DataPageHeaderV2.num_values"); h.num_values = r.read_i32(); return true;
            case 2: expect(r, g, thrift::kI32, "DataPageHeaderV2.num_nulls"); h.num_nulls = r.read_i32(); return true;
            case 3: expect(r, g, thrift::kI32, "DataPageHeaderV2.num_rows"); h.num_rows = r.read_i32(); return true;
            case 4: expect(r, g, thrift::kI32, "DataPageHeaderV2.encoding"); h.encoding = read_encoding(r); return true;
            case 5: expect(r, g, thrift::kI32, "DataPageHeaderV2.definition_levels_byte_length"); h.def_bytes = r.read_i32(); return true;
            case 6: expect(r, g, thrift::kI32, "DataPageHeaderV2.repetition_levels_byte_length"); h.rep_bytes = r.read_i32(); return true;
            case 7: h.is_compressed = r.read_bool(g); return true;
            default: return false;
          }
        });
        return true;
      default: return false;
    }
  });
  if (!has_type) r.error("the page header has no page type");
  if (h.uncompressed_size < 0 || h.compressed_size < 0) r.error("negative page size");
  if (h.num_values < 0 || h.num_nulls < 0 || h.num_rows < 0 || h.def_bytes < 0 || h.rep_bytes < 0)
    r.error("negative count in the page header");
  return r.pos();
}

}  // namespace tv::pq
