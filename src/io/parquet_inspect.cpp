#include "io/parquet_inspect.h"

#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "io/parquet.h"
#include "io/parquet_rows.h"

namespace tv::pq {

namespace {

std::string joined(const std::set<std::string>& s) {
  std::string out;
  for (const std::string& x : s) out += (out.empty() ? "" : ", ") + x;
  return out;
}

std::string one_line(const std::string& v, size_t width) {
  std::string s = v.substr(0, std::min(v.find('\n'), width));
  if (s.size() < v.size()) s += str_cat(" ... (", v.size(), " characters)");
  return s;
}

}  // namespace

std::string inspect_text(const std::string& path, bool json) {
  ParquetFile f(path);
  const FileMeta& m = f.meta();
  struct Col {
    std::set<std::string> codecs, encodings;
    int64_t compressed = 0, uncompressed = 0;
  };
  std::vector<Col> cols(f.columns().size());
  for (const RowGroupMeta& g : m.row_groups)
    for (size_t c = 0; c < g.columns.size() && c < cols.size(); ++c) {
      const ColumnMeta& cm = g.columns[c].meta;
      cols[c].codecs.insert(codec_name(cm.codec));
      for (Encoding e : cm.encodings) cols[c].encodings.insert(encoding_name(e));
      cols[c].compressed += cm.total_compressed_size;
      cols[c].uncompressed += cm.total_uncompressed_size;
    }
  const std::vector<std::string> images = image_fields(f);

  if (json) {
    nlohmann::ordered_json j;
    j["path"] = path;
    j["format"] = "parquet";
    j["rows"] = f.num_rows();
    j["created_by"] = m.created_by;
    j["metadata"] = nlohmann::ordered_json::object();
    for (const auto& [k, v] : m.key_value) j["metadata"][k] = v;
    j["row_groups"] = nlohmann::ordered_json::array();
    for (const RowGroupMeta& g : m.row_groups) j["row_groups"].push_back({{"rows", g.num_rows}, {"bytes", g.total_byte_size}});
    j["columns"] = nlohmann::ordered_json::array();
    for (size_t c = 0; c < cols.size(); ++c) {
      const ColumnInfo& ci = f.columns()[c];
      j["columns"].push_back({{"path", ci.path}, {"type", type_name(ci.type)}, {"string", ci.utf8},
                              {"max_definition_level", ci.max_def}, {"max_repetition_level", ci.max_rep},
                              {"codecs", cols[c].codecs}, {"encodings", cols[c].encodings},
                              {"compressed_bytes", cols[c].compressed}, {"uncompressed_bytes", cols[c].uncompressed}});
    }
    j["image_columns"] = images;
    return j.dump() + "\n";
  }
  std::set<std::string> all_codecs;
  for (const Col& c : cols) all_codecs.insert(c.codecs.begin(), c.codecs.end());
  std::string s = str_cat(path, ": Parquet, ", f.num_rows(), " rows in ", f.num_row_groups(), " row group",
                          f.num_row_groups() == 1 ? "" : "s", ", ", cols.size(), " columns, codecs ", joined(all_codecs), "\n");
  if (!m.created_by.empty()) s += "  created by " + m.created_by + "\n";
  for (const auto& [k, v] : m.key_value)
    if (k != "ARROW:schema") s += "  metadata " + k + " = " + one_line(v, 72) + "\n";
  if (!images.empty()) {
    std::string list;
    for (const std::string& x : images) list += (list.empty() ? "" : ", ") + x;
    s += "  image columns: " + list + "\n";
  }
  s += "schema:\n";
  std::string schema = f.schema_text();
  for (size_t pos = 0; pos < schema.size();) {
    const size_t nl = schema.find('\n', pos);
    s += "  " + schema.substr(pos, nl - pos + 1);
    pos = nl + 1;
  }
  s += "row groups:\n";
  for (int g = 0; g < f.num_row_groups(); ++g)
    s += str_cat("  ", g, ": ", m.row_groups[size_t(g)].num_rows, " rows, ", m.row_groups[size_t(g)].total_byte_size, " bytes\n");
  s += "columns (codecs; encodings; compressed / uncompressed bytes):\n";
  for (size_t c = 0; c < cols.size(); ++c)
    s += str_cat("  ", f.columns()[c].path, "  ", type_name(f.columns()[c].type), "  ", joined(cols[c].codecs), "; ",
                 joined(cols[c].encodings), "; ", cols[c].compressed, " / ", cols[c].uncompressed, "\n");
  return s;
}

}  // namespace tv::pq
