#include "io/parquet.h"

#include <cstring>

#include "core/error.h"
#include "io/parquet_codecs.h"

namespace tv::pq {

namespace {

constexpr int kMaxSchemaDepth = 100;

int bit_width_of(uint32_t max_value) {
  int w = 0;
  while (w < 32 && (uint64_t(1) << w) <= max_value) ++w;
  return w;
}

uint32_t load_u32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// A chunk starts at its dictionary page when it has one, else at its first data page.
int64_t chunk_start(const ColumnMeta& m) {
  if (m.dictionary_page_offset > 0 && (m.dictionary_page_offset < m.data_page_offset || m.data_page_offset < 4))
    return m.dictionary_page_offset;
  return m.data_page_offset;
}

}  // namespace

ParquetFile::ParquetFile(const std::string& path) : file_(path) {
  const size_t n = file_.size();
  const char* d = file_.data();
  if (n < 12) fail(path, ": not a Parquet file: ", n, " bytes is too short (truncated?)");
  if (std::memcmp(d, "PAR1", 4) != 0) fail(path, ": not a Parquet file: no \"PAR1\" magic at byte 0");
  if (std::memcmp(d + n - 4, "PARE", 4) == 0)
    fail(path, ": an encrypted Parquet file (\"PARE\" footer) is not supported");
  if (std::memcmp(d + n - 4, "PAR1", 4) != 0)
    fail(path, ": no \"PAR1\" magic at byte ", n - 4, " (the file is truncated or not Parquet)");
  const uint32_t footer_len = load_u32(d + n - 8);
  if (footer_len > n - 12)
    fail(path, ": the footer length ", footer_len, " at byte ", n - 8, " is larger than the file allows (", n - 12, ")");
  const uint64_t footer_at = n - 8 - footer_len;
  footer_offset_ = footer_at;
  meta_ = decode_file_meta(std::string_view(d + footer_at, footer_len), footer_at, path);
  if (meta_.encrypted) fail(path, ": encrypted Parquet files are not supported");
  build_schema();
  check_row_groups();
}

void ParquetFile::build_schema() {
  const auto& s = meta_.schema;
  nodes_.resize(s.size());
  // The flattened schema is depth-first; a stack of (node, children still to come) rebuilds the tree.
  struct Open { int node; int32_t left; };
  std::vector<Open> stack;
  nodes_[0].element = &s[0];
  if (s[0].num_children <= 0) fail(path(), ": the schema root has no fields");
  stack.push_back({0, s[0].num_children});
  size_t next = 1;
  while (!stack.empty()) {
    if (stack.back().left == 0) {
      stack.pop_back();
      continue;
    }
    if (next >= s.size())
      fail(path(), ": the schema ends early: '", s[size_t(stack.back().node)].name, "' expects more children");
    --stack.back().left;
    const int i = int(next++);
    SchemaNode& node = nodes_[size_t(i)];
    const SchemaElement& e = s[size_t(i)];
    const SchemaNode& parent = nodes_[size_t(stack.back().node)];
    node.element = &e;
    node.parent = stack.back().node;
    node.max_def = int16_t(parent.max_def + (e.repetition != Repetition::Required));
    node.max_rep = int16_t(parent.max_rep + (e.repetition == Repetition::Repeated));
    node.is_list = e.converted_type == 3 || e.logical_type == 3;
    node.is_map = e.converted_type == 1 || e.converted_type == 2 || e.logical_type == 2;
    nodes_[size_t(node.parent)].children.push_back(i);
    if (e.num_children > 0) {
      if (stack.size() >= size_t(kMaxSchemaDepth)) fail(path(), ": the schema is nested more than ", kMaxSchemaDepth, " deep");
      stack.push_back({i, e.num_children});
      continue;
    }
    if (!e.has_type) fail(path(), ": schema field '", e.name, "' has neither a type nor children");
    ColumnInfo c;
    c.node = i;
    c.type = e.type;
    c.type_length = e.type_length;
    c.max_def = node.max_def;
    c.max_rep = node.max_rep;
    c.utf8 = e.converted_type == 0 || e.logical_type == 1;
    for (int a = i; a > 0; a = nodes_[size_t(a)].parent) c.parts.insert(c.parts.begin(), s[size_t(a)].name);
    for (const std::string& part : c.parts) c.path += (c.path.empty() ? "" : ".") + part;
    node.leaf = int(columns_.size());
    columns_.push_back(std::move(c));
  }
  if (next != s.size()) fail(path(), ": the schema has ", s.size() - next, " elements outside the root's fields");
}

void ParquetFile::check_row_groups() {
  int64_t rows = 0;
  for (size_t g = 0; g < meta_.row_groups.size(); ++g) {
    const RowGroupMeta& rg = meta_.row_groups[g];
    if (rg.num_rows < 0) fail(path(), ", row group ", g, ": negative row count");
    if (rg.columns.size() != columns_.size())
      fail(path(), ", row group ", g, ": ", rg.columns.size(), " column chunks, the schema has ", columns_.size(), " columns");
    if (rg.num_rows > INT64_MAX - rows) fail(path(), ": row counts overflow");
    rows += rg.num_rows;
  }
  if (rows != meta_.num_rows)
    fail(path(), ": the row groups hold ", rows, " rows, the footer says ", meta_.num_rows);
}

int ParquetFile::find_column(std::string_view dotted) const {
  for (size_t i = 0; i < columns_.size(); ++i)
    if (columns_[i].path == dotted) return int(i);
  return -1;
}

int ParquetFile::find_field(std::string_view name) const {
  for (int c : nodes_[0].children)
    if (nodes_[size_t(c)].element->name == name) return c;
  return -1;
}

const std::string* ParquetFile::key_value(std::string_view key) const {
  for (const auto& [k, v] : meta_.key_value)
    if (k == key) return &v;
  return nullptr;
}

std::string ParquetFile::where(int group, int column) const {
  return str_cat(path(), ", row group ", group, ", column '", columns_[size_t(column)].path, "'");
}

std::string ParquetFile::where_chunk(int group, int column) const {
  std::string s = where(group, column);
  if (group >= 0 && group < num_row_groups()) {
    s += str_cat(", chunk at byte ", chunk_start(meta_.row_groups[size_t(group)].columns[size_t(column)].meta));
  }
  return s;
}

std::string ParquetFile::schema_text() const {
  std::string out;
  std::vector<std::pair<int, int>> todo{{0, -1}};  // (node, depth)
  while (!todo.empty()) {
    auto [i, depth] = todo.back();
    todo.pop_back();
    const SchemaNode& n = nodes_[size_t(i)];
    if (i != 0) {
      const SchemaElement& e = *n.element;
      out += std::string(size_t(depth) * 2, ' ') + e.name + ": ";
      if (n.leaf >= 0) {
        out += type_name(e.type);
        if (e.type == PhysicalType::FixedLenByteArray) out += str_cat("(", e.type_length, ")");
        if (columns_[size_t(n.leaf)].utf8) out += " (string)";
      } else {
        out += n.is_list ? "group (list)" : n.is_map ? "group (map)" : "group";
      }
      out += e.repetition == Repetition::Required ? ", required" : e.repetition == Repetition::Optional ? ", optional" : ", repeated";
      out += "\n";
    }
    for (size_t k = n.children.size(); k-- > 0;) todo.push_back({n.children[k], depth + 1});
  }
  return out;
}

ColumnData ParquetFile::read_column(int group, int column) const {
  if (group < 0 || group >= num_row_groups()) fail(path(), ": no row group ", group, " (the file has ", num_row_groups(), ")");
  if (column < 0 || column >= int(columns_.size())) fail(path(), ": no column ", column);
  const std::string at = where(group, column);
  const ColumnInfo& info = columns_[size_t(column)];
  const RowGroupMeta& rg = meta_.row_groups[size_t(group)];
  const ColumnChunkMeta& chunk = rg.columns[size_t(column)];
  if (!chunk.has_meta) fail(at, ": the column chunk has no metadata");
  if (chunk.external) fail(at, ": the column chunk lives in another file (file_path), which is not supported");
  const ColumnMeta& m = chunk.meta;
  if (m.type != info.type)
    fail(at, ": the chunk's type ", type_name(m.type), " differs from the schema's ", type_name(info.type));
  if (m.path != info.parts) fail(at, ": the chunk's path_in_schema differs from the schema");

  // The chunk's byte range, checked against the data region (between the leading magic and the footer).
  const uint64_t data_end = footer_offset_;
  ColumnData out;
  out.column = column;
  out.max_def = info.max_def;
  out.max_rep = info.max_rep;
  out.values.type = info.type;
  out.values.type_length = info.type_length;
  if (m.num_values == 0) {  // writers leave an empty chunk's offsets loose (pyarrow: data_page_offset 0)
    if (rg.num_rows != 0) fail(at, ": an empty chunk in a row group of ", rg.num_rows, " rows");
    return out;
  }
  const int64_t start = chunk_start(m);
  if (start < 4 || uint64_t(start) >= data_end || m.total_compressed_size < 0 ||
      uint64_t(m.total_compressed_size) > data_end - uint64_t(start))
    fail(at, ": the column chunk at byte ", start, " of ", m.total_compressed_size,
         " bytes lies outside the file's data (bytes 4 to ", data_end, ")");
  const uint64_t end = uint64_t(start) + uint64_t(m.total_compressed_size);
  // Entries per chunk are bounded by what the file could plausibly encode (run-length coding can expand a
  // few bytes a lot, but not past this), so a forged count cannot exhaust memory.
  const uint64_t max_entries = std::max<uint64_t>(file_.size(), 65536) * 256;
  if (m.num_values < 0 || uint64_t(m.num_values) > max_entries)
    fail(at, ": the chunk claims ", m.num_values, " values, more than a file of ", file_.size(), " bytes can hold");

  ValueSink dict;
  dict.type = info.type;
  dict.type_length = info.type_length;
  bool have_dict = false;
  const bool keeps_views = info.type == PhysicalType::ByteArray || info.type == PhysicalType::FixedLenByteArray ||
                           info.type == PhysicalType::Int96;
  std::string scratch;
  std::vector<uint32_t> levels, indices;
  const int def_bw = bit_width_of(uint32_t(info.max_def)), rep_bw = bit_width_of(uint32_t(info.max_rep));

  // The page body, decompressed when needed: a view into the file, or into an owned buffer (kept with the
  // values when strings point into it).
  auto page_bytes = [&](std::string_view body, size_t uncompressed, bool compressed, const std::string& pw) {
    if (!compressed || m.codec == Codec::Uncompressed) {
      if (body.size() != uncompressed)
        fail(pw, ": ", body.size(), " bytes stored, the page header says ", uncompressed, " uncompressed");
      return body;
    }
    std::string& buf = keeps_views ? out.values.new_buffer() : scratch;
    decompress(m.codec, body, uncompressed, buf, pw);
    return std::string_view(buf);
  };

  // Levels of one page: appends `n` levels to `dst`.
  auto read_levels = [&](std::string_view data, int bw, int16_t max, size_t n, std::vector<int16_t>& dst,
                         const std::string& pw) {
    levels.clear();
    decode_hybrid(data, bw, n, uint32_t(max), levels, pw);
    dst.insert(dst.end(), levels.begin(), levels.end());
  };

  auto read_page_values = [&](Encoding enc, std::string_view data, size_t first_entry, size_t n, const std::string& pw) {
    size_t present = n;
    if (info.max_def > 0) {
      present = 0;
      for (size_t i = first_entry; i < first_entry + n; ++i) present += out.def[i] == info.max_def;
    }
    if (enc == Encoding::PlainDictionary || enc == Encoding::RleDictionary) {
      if (!have_dict) fail(pw, ": dictionary-encoded values but no dictionary page");
      if (present == 0) return;
      if (data.empty()) fail(pw, ": dictionary indices are missing");
      const int bw = uint8_t(data[0]);
      if (bw > 32) fail(pw, ": dictionary index bit width ", bw);
      const size_t dict_size = dict.size();
      if (dict_size == 0) fail(pw, ": dictionary indices into an empty dictionary");
      indices.clear();
      decode_hybrid(data.substr(1), bw, present, uint32_t(dict_size - 1), indices, pw);
      for (uint32_t i : indices) out.values.append_from(dict, i);
      return;
    }
    decode_values(enc, data, present, out.values, pw);
  };

  uint64_t pos = uint64_t(start);
  while (pos < end && out.entries < uint64_t(m.num_values)) {
    const std::string pw0 = str_cat(at, ", page at byte ", pos);
    PageHeader h;
    const size_t hlen = decode_page_header(std::string_view(file_.data() + pos, size_t(end - pos)), pos, at, h);
    const uint64_t body_at = pos + hlen;
    if (uint64_t(h.compressed_size) > end - body_at)
      fail(pw0, ": a page of ", h.compressed_size, " bytes at byte ", body_at, " runs past the chunk's end at byte ", end);
    const std::string_view body(file_.data() + body_at, size_t(h.compressed_size));
    const std::string pw = str_cat(at, ", page at byte ", pos);
    pos = body_at + uint64_t(h.compressed_size);
    if (h.type == PageType::IndexPage) continue;
    if (!h.has_page_header) fail(pw, ": the page header lacks its ", h.type == PageType::DictionaryPage ? "dictionary" : "data", " page header");

    if (h.type == PageType::DictionaryPage) {
      if (have_dict || out.entries > 0) fail(pw, ": a dictionary page after the first page");
      if (h.encoding != Encoding::Plain && h.encoding != Encoding::PlainDictionary)
        fail(pw, ": dictionary page encoding ", encoding_name(h.encoding), " (expected PLAIN)");
      // Dictionary strings must outlive this call: the page's bytes go into the values' buffers.
      std::string_view bytes;
      if (m.codec == Codec::Uncompressed) {
        bytes = page_bytes(body, size_t(h.uncompressed_size), true, pw);
      } else {
        std::string& buf = out.values.new_buffer();
        decompress(m.codec, body, size_t(h.uncompressed_size), buf, pw);
        bytes = buf;
      }
      if (uint64_t(h.num_values) > bytes.size() * 8 + 8)
        fail(pw, ": a dictionary of ", h.num_values, " values in ", bytes.size(), " bytes");
      decode_values(Encoding::Plain, bytes, size_t(h.num_values), dict, pw);
      have_dict = true;
      continue;
    }

    const size_t n = size_t(h.num_values);
    if (uint64_t(n) > uint64_t(m.num_values) - out.entries)
      fail(pw, ": the page holds ", n, " values, more than the ", uint64_t(m.num_values) - out.entries, " left of the chunk's ", m.num_values);
    const size_t first = out.entries;

    if (h.type == PageType::DataPage) {
      std::string_view data = page_bytes(body, size_t(h.uncompressed_size), true, pw);
      size_t off = 0;
      auto level_section = [&](Encoding enc, int bw, int16_t max, std::vector<int16_t>& dst, const char* what) {
        if (enc != Encoding::Rle) fail(pw, ": ", what, " levels in ", encoding_name(enc), " (only RLE is supported)");
        if (data.size() - off < 4) fail(pw, ": the ", what, " levels' length runs past the page end");
        const uint32_t len = load_u32(data.data() + off);
        off += 4;
        if (len > data.size() - off) fail(pw, ": ", what, " levels of ", len, " bytes run past the page end");
        read_levels(data.substr(off, len), bw, max, n, dst, pw);
        off += len;
      };
      if (info.max_rep > 0) level_section(h.rep_encoding, rep_bw, info.max_rep, out.rep, "repetition");
      if (info.max_def > 0) level_section(h.def_encoding, def_bw, info.max_def, out.def, "definition");
      out.entries += n;
      read_page_values(h.encoding, data.substr(off), first, n, pw);
    } else {  // DataPageV2: levels stored uncompressed before the (maybe compressed) values
      const uint64_t lv = uint64_t(h.rep_bytes) + uint64_t(h.def_bytes);
      if (lv > body.size() || lv > uint64_t(h.uncompressed_size))
        fail(pw, ": level sections of ", lv, " bytes are longer than the page (", body.size(), " bytes)");
      if (info.max_rep > 0) read_levels(body.substr(0, size_t(h.rep_bytes)), rep_bw, info.max_rep, n, out.rep, pw);
      if (info.max_def > 0) read_levels(body.substr(size_t(h.rep_bytes), size_t(h.def_bytes)), def_bw, info.max_def, n, out.def, pw);
      out.entries += n;
      if (h.num_rows > 0 && info.max_rep == 0 && size_t(h.num_rows) != n)
        fail(pw, ": a page of ", n, " values and ", h.num_rows, " rows in a column that does not repeat");
      std::string_view data = page_bytes(body.substr(size_t(lv)), size_t(h.uncompressed_size) - size_t(lv), h.is_compressed, pw);
      read_page_values(h.encoding, data, first, n, pw);
    }
  }
  if (out.entries != uint64_t(m.num_values))
    fail(at, ": the chunk ends at byte ", pos, " after ", out.entries, " of its ", m.num_values, " values");
  if (out.values.size() > out.entries) fail(at, ": more values than entries");
  // Rows: every entry starts one when the column does not repeat, else those with repetition level 0.
  int64_t rows = int64_t(out.entries);
  if (info.max_rep > 0) {
    rows = 0;
    for (int16_t r : out.rep) rows += r == 0;
    if (!out.rep.empty() && out.rep[0] != 0) fail(at, ": the first entry's repetition level is not 0");
  }
  if (rows != rg.num_rows) fail(at, ": the chunk holds ", rows, " rows, the row group ", rg.num_rows);
  return out;
}

}  // namespace tv::pq
