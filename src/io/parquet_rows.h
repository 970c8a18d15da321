// Rows of a Parquet file as nested values: the definition and repetition levels of a field's leaf columns
// put back together (structs, lists, maps and nulls), one row group at a time, for the fields asked for.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "io/parquet.h"

namespace tv::pq {

// A nested value. Struct fields and list elements are `items`; a struct field carries its name in `key`.
// Bytes point into the column data of the FieldValues that holds the value.
struct Value {
  enum Kind : uint8_t { Null, Bool, Int, Real, Bytes, List, Struct };
  Kind kind = Null;
  int64_t i = 0;
  double d = 0;
  std::string_view bytes;
  std::string_view key;
  std::vector<Value> items;

  bool is_null() const { return kind == Null; }
  const Value* field(std::string_view name) const;  // a struct's field, null when absent or not a struct
};

// One top-level field of one row group: a value per row.
struct FieldValues {
  std::vector<ColumnData> columns;  // the leaf columns read (the values point into them)
  std::vector<Value> rows;
};

// Reads the top-level field `name` of row group `group` (all its leaf columns, nothing else).
// Errors name the file, row group and field; a missing field lists the file's fields.
FieldValues read_field(const ParquetFile& file, int group, const std::string& name);

// Checks that top-level field `name` exists and that its leaves are strings (BYTE_ARRAY), as a text, caption or
// list-of-texts field must be. Errors name the file, the footer's byte offset (missing field) or the row group,
// column and chunk offset (wrong type).
void require_text_field(const ParquetFile& file, const std::string& name);

// The top-level field names, comma-separated (for error messages).
std::string field_names(const ParquetFile& file);

// HuggingFace conventions (datasets' Image feature: a struct {bytes: binary, path: string}).
// Text of a string value; nullopt for null. Errors (with `where`) for anything else.
std::optional<std::string_view> as_text(const Value& v, const std::string& where);
// The texts of a string or a list of strings (nulls skipped).
std::vector<std::string_view> as_texts(const Value& v, const std::string& where);
struct ImageRef {
  std::string_view bytes;  // encoded image (PNG / JPEG); empty when absent
  std::string_view path;   // the original file name; may be empty
};
// An image struct (or a list of them, for as_images); nulls give nothing.
std::optional<ImageRef> as_image(const Value& v, const std::string& where);
std::vector<ImageRef> as_images(const Value& v, const std::string& where);

// One chat message of a conversation column. Both HuggingFace layouts are read: {role, content} where content
// is a string or a list of parts {type: "text" | "image", text} (rlaif-v_formatted, the chat-template form),
// and LLaVA's {from, value} (value may hold "<image>" markers, left as they are).
struct Message {
  std::string_view role;  // "user", "assistant", "system" / LLaVA's "human", "gpt"
  std::string text;       // the text parts joined in order
  int images = 0;         // image parts (rlaif-v: {"type": "image"})
};
std::vector<Message> as_messages(const Value& v, const std::string& where);

// The top-level fields that hold images: those the `huggingface` metadata's features call "Image" (also
// inside a list / Sequence), else the structs (or lists of structs) with a binary `bytes` field.
std::vector<std::string> image_fields(const ParquetFile& file);

}  // namespace tv::pq
