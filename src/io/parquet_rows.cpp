#include "io/parquet_rows.h"

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace tv::pq {

const Value* Value::field(std::string_view name) const {
  if (kind != Struct) return nullptr;
  for (const Value& v : items)
    if (v.key == name) return &v;
  return nullptr;
}

namespace {

// How one schema node on the way from a top-level field to a leaf shows in the nested value.
struct Step {
  int node = 0;
  int16_t def = 0, rep = 0;
  bool repeated = false;
  bool leaf = false;
  bool passthrough = false;  // the node adds no struct level: a LIST / MAP group, or a 3-level list's middle
  std::string_view child_name;  // the next step's name (a struct field's key)
};

bool is_list_middle(const ParquetFile& f, int node) {
  const SchemaNode& n = f.nodes()[size_t(node)];
  if (n.parent < 0) return false;
  const SchemaNode& p = f.nodes()[size_t(n.parent)];
  if (!p.is_list || n.element->repetition != Repetition::Repeated || n.children.size() != 1) return false;
  // Backward-compatibility rules of LogicalTypes.md: these two-level names make the repeated group the element.
  const std::string& name = n.element->name;
  return name != "array" && name != p.element->name + "_tuple";
}

std::vector<Step> steps_to(const ParquetFile& f, int leaf_node) {
  std::vector<int> chain;
  for (int a = leaf_node; a > 0; a = f.nodes()[size_t(a)].parent) chain.insert(chain.begin(), a);
  std::vector<Step> steps(chain.size());
  for (size_t i = 0; i < chain.size(); ++i) {
    const SchemaNode& n = f.nodes()[size_t(chain[i])];
    Step& s = steps[i];
    s.node = chain[i];
    s.def = n.max_def;
    s.rep = n.max_rep;
    s.repeated = n.element->repetition == Repetition::Repeated;
    s.leaf = n.leaf >= 0;
    const bool wrapper = (n.is_list || n.is_map) && n.children.size() == 1 &&
                         f.nodes()[size_t(n.children[0])].element->repetition == Repetition::Repeated;
    s.passthrough = !s.leaf && (wrapper || is_list_middle(f, chain[i]));
    if (i + 1 < chain.size()) s.child_name = f.nodes()[size_t(chain[i + 1])].element->name;
  }
  return steps;
}

void set_scalar(Value& v, const ValueSink& vals, size_t i) {
  switch (vals.type) {
    case PhysicalType::Boolean: v.kind = Value::Bool; v.i = vals.ints[i]; return;
    case PhysicalType::Int32:
    case PhysicalType::Int64: v.kind = Value::Int; v.i = vals.ints[i]; return;
    case PhysicalType::Float:
    case PhysicalType::Double: v.kind = Value::Real; v.d = vals.reals[i]; return;
    default: v.kind = Value::Bytes; v.bytes = vals.strings[i]; return;
  }
}

// One leaf's values as rows of nested values (record assembly from the levels).
std::vector<Value> assemble_leaf(const ParquetFile& f, const ColumnData& col, const std::string& where) {
  const std::vector<Step> steps = steps_to(f, f.columns()[size_t(col.column)].node);
  const size_t k = steps.size();
  std::vector<int> rep_step(size_t(col.max_rep) + 1, -1);  // repetition level -> the repeated step it appends to
  for (size_t i = 0; i < k; ++i)
    if (steps[i].repeated) rep_step[size_t(steps[i].rep)] = int(i);
  std::vector<Value> rows;
  std::vector<Value*> slots(k + 1, nullptr);
  size_t vi = 0;
  for (size_t e = 0; e < col.entries; ++e) {
    const int r = col.max_rep ? col.rep[e] : 0;
    const int d = col.max_def ? col.def[e] : 0;
    size_t start = 0;
    if (r == 0) {
      rows.emplace_back();
      slots[0] = &rows.back();
    } else {
      if (rows.empty() || rep_step[size_t(r)] < 0) fail(where, ": entry ", e, " repeats with no list open");
      start = size_t(rep_step[size_t(r)]);
      if (d < steps[start].def) fail(where, ": entry ", e, " repeats a list it does not define");
    }
    for (size_t i = start; i < k; ++i) {
      const Step& s = steps[i];
      Value* S = slots[i];
      const bool appending = r > 0 && i == start;
      if (!appending && d < s.def) {
        S->kind = s.repeated ? Value::List : Value::Null;
        break;
      }
      Value* I = S;
      if (s.repeated) {
        S->kind = Value::List;
        I = &S->items.emplace_back();
      }
      if (s.leaf) {
        if (vi >= col.values.size()) fail(where, ": more defined entries than values");
        set_scalar(*I, col.values, vi++);
        break;
      }
      if (s.passthrough) {
        slots[i + 1] = I;
      } else {
        I->kind = Value::Struct;
        Value& child = I->items.emplace_back();
        child.key = s.child_name;
        slots[i + 1] = &child;
      }
    }
  }
  return rows;
}

void merge(Value& a, Value&& b, const std::string& where) {
  if (a.kind == Value::Struct && b.kind == Value::Struct) {
    for (Value& bf : b.items) {
      Value* af = nullptr;
      for (Value& x : a.items)
        if (x.key == bf.key) af = &x;
      if (af) merge(*af, std::move(bf), where);
      else a.items.push_back(std::move(bf));
    }
    return;
  }
  if (a.kind == Value::List && b.kind == Value::List) {
    if (a.items.size() != b.items.size())
      fail(where, ": the field's columns disagree on a list's length (", a.items.size(), " and ", b.items.size(), ")");
    for (size_t i = 0; i < a.items.size(); ++i) merge(a.items[i], std::move(b.items[i]), where);
    return;
  }
  if (a.kind != b.kind) fail(where, ": the field's columns disagree on where values are null");
}

bool has_image_feature(const nlohmann::json& j) {
  if (j.is_array()) return j.size() == 1 && has_image_feature(j[0]);
  if (!j.is_object()) return false;
  auto t = j.find("_type");
  if (t != j.end() && t->is_string() && *t == "Image") return true;
  auto inner = j.find("feature");
  return inner != j.end() && has_image_feature(*inner);
}

}  // namespace

FieldValues read_field(const ParquetFile& file, int group, const std::string& name) {
  const int node = file.find_field(name);
  if (node < 0) fail(file.path(), ": no field '", name, "' (the file has: ", field_names(file), ")");
  FieldValues out;
  const std::string where = str_cat(file.path(), ", row group ", group, ", field '", name, "'");
  // Leaves under `node`, in schema order.
  for (size_t c = 0; c < file.columns().size(); ++c) {
    int a = file.columns()[c].node;
    while (a > 0 && a != node) a = file.nodes()[size_t(a)].parent;
    if (a == node) out.columns.push_back(file.read_column(group, int(c)));
  }
  for (const ColumnData& col : out.columns) {
    std::vector<Value> rows = assemble_leaf(file, col, file.where(group, col.column));
    if (out.rows.empty()) {
      out.rows = std::move(rows);
      continue;
    }
    if (rows.size() != out.rows.size()) fail(where, ": its columns hold different numbers of rows");
    for (size_t r = 0; r < rows.size(); ++r) merge(out.rows[r], std::move(rows[r]), where);
  }
  return out;
}

void require_text_field(const ParquetFile& file, const std::string& name) {
  const int node = file.find_field(name);
  if (node < 0)
    fail(file.path(), ": no column '", name, "' (footer at byte ", file.footer_offset(), "; the file has: ", field_names(file), ")");
  for (size_t c = 0; c < file.columns().size(); ++c) {
    int a = file.columns()[c].node;
    while (a > 0 && a != node) a = file.nodes()[size_t(a)].parent;
    if (a != node) continue;
    const ColumnInfo& info = file.columns()[c];
    if (info.type != PhysicalType::ByteArray)
      fail(file.num_row_groups() ? file.where_chunk(0, int(c)) : file.path() + ", column '" + info.path + "'",
           ": expected a string (BYTE_ARRAY) column, found ", type_name(info.type));
  }
}

std::string field_names(const ParquetFile& file) {
  std::string s;
  for (int c : file.nodes()[0].children) s += (s.empty() ? "" : ", ") + file.nodes()[size_t(c)].element->name;
  return s;
}

std::optional<std::string_view> as_text(const Value& v, const std::string& where) {
  if (v.kind == Value::Null) return std::nullopt;
  if (v.kind != Value::Bytes) fail(where, ": expected a string");
  return v.bytes;
}

std::vector<std::string_view> as_texts(const Value& v, const std::string& where) {
  std::vector<std::string_view> out;
  if (v.kind == Value::List) {
    for (const Value& x : v.items)
      if (auto t = as_text(x, where)) out.push_back(*t);
  } else if (auto t = as_text(v, where)) {
    out.push_back(*t);
  }
  return out;
}

std::optional<ImageRef> as_image(const Value& v, const std::string& where) {
  if (v.kind == Value::Null) return std::nullopt;
  if (v.kind == Value::Bytes) return ImageRef{v.bytes, {}};  // a bare binary column
  if (v.kind != Value::Struct) fail(where, ": expected an image struct {bytes, path}");
  ImageRef r;
  const Value* b = v.field("bytes");
  const Value* p = v.field("path");
  if (!b && !p) fail(where, ": an image struct needs a \"bytes\" or \"path\" field");
  if (b && b->kind == Value::Bytes) r.bytes = b->bytes;
  else if (b && b->kind != Value::Null) fail(where, ": the image's \"bytes\" is not binary");
  if (p && p->kind == Value::Bytes) r.path = p->bytes;
  return r;
}

std::vector<ImageRef> as_images(const Value& v, const std::string& where) {
  std::vector<ImageRef> out;
  if (v.kind == Value::List) {
    for (const Value& x : v.items)
      if (auto im = as_image(x, where)) out.push_back(*im);
  } else if (auto im = as_image(v, where)) {
    out.push_back(*im);
  }
  return out;
}

std::vector<Message> as_messages(const Value& v, const std::string& where) {
  std::vector<Message> out;
  if (v.kind == Value::Null) return out;
  if (v.kind != Value::List) fail(where, ": expected a list of messages");
  for (size_t i = 0; i < v.items.size(); ++i) {
    const Value& m = v.items[i];
    if (m.kind == Value::Null) continue;
    const std::string at = str_cat(where, ", message ", i);
    if (m.kind != Value::Struct) fail(at, ": expected a message struct {role, content} or {from, value}");
    Message msg;
    const Value* role = m.field("role");
    if (!role) role = m.field("from");
    if (!role || role->kind != Value::Bytes) fail(at, ": the message has no string \"role\" (or \"from\")");
    msg.role = role->bytes;
    const Value* content = m.field("content");
    if (!content) content = m.field("value");
    if (!content) fail(at, ": the message has no \"content\" (or \"value\")");
    if (content->kind == Value::Bytes) {
      msg.text = std::string(content->bytes);
    } else if (content->kind == Value::List) {
      for (const Value& part : content->items) {
        if (part.kind == Value::Bytes) {
          msg.text += part.bytes;
          continue;
        }
        if (part.kind != Value::Struct) continue;
        const Value* type = part.field("type");
        const Value* text = part.field("text");
        if (type && type->kind == Value::Bytes && type->bytes == "image") {
          ++msg.images;
        } else if (text && text->kind == Value::Bytes) {
          msg.text += text->bytes;
        }
      }
    } else if (content->kind != Value::Null) {
      fail(at, ": \"content\" is neither a string nor a list of parts");
    }
    out.push_back(std::move(msg));
  }
  return out;
}

std::vector<std::string> image_fields(const ParquetFile& file) {
  std::vector<std::string> out;
  if (const std::string* hf = file.key_value("huggingface")) {
    const nlohmann::json j = nlohmann::json::parse(*hf, nullptr, false);
    const nlohmann::json* feats = nullptr;
    if (j.is_object() && j.contains("info") && j["info"].is_object() && j["info"].contains("features"))
      feats = &j["info"]["features"];
    if (feats && feats->is_object()) {
      for (const auto& [name, feat] : feats->items())
        if (has_image_feature(feat) && file.find_field(name) >= 0) out.push_back(name);
      return out;
    }
  }
  // No usable metadata: any struct (or list of structs) with a binary "bytes" leaf.
  for (const ColumnInfo& c : file.columns()) {
    if (c.type != PhysicalType::ByteArray || c.parts.size() < 2 || c.parts.back() != "bytes") continue;
    const std::string& top = c.parts.front();
    bool seen = false;
    for (const std::string& s : out) seen |= s == top;
    if (!seen) out.push_back(top);
  }
  return out;
}

}  // namespace tv::pq
