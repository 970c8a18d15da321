// Thrift compact protocol, read side: just what the Parquet footer and page headers need. Every read is
// checked against the buffer's end and nesting is bounded, so a damaged or hostile footer gives an Error
// (naming the byte offset) and never a read outside the buffer.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace tv::thrift {

// Compact-protocol type ids (as they appear in field and list headers).
enum Type : uint8_t {
  kStop = 0, kBoolTrue = 1, kBoolFalse = 2, kByte = 3, kI16 = 4, kI32 = 5, kI64 = 6, kDouble = 7,
  kBinary = 8, kList = 9, kSet = 10, kMap = 11, kStruct = 12,
};

struct FieldHeader {
  int16_t id = 0;
  uint8_t type = kStop;  // kStop ends the struct
};

struct ListHeader {
  uint8_t elem_type = 0;
  uint32_t size = 0;
};

class CompactReader {
 public:
  // `base` is the buffer's offset in its file, so errors name file offsets; `what` names the buffer
  // ("footer", "page header") in errors.
  CompactReader(std::string_view buf, uint64_t base, std::string what)
      : buf_(buf), base_(base), what_(std::move(what)) {}

  // Struct framing: begin_struct() before its first field, read_field() until type == kStop, then
  // end_struct(). Field ids are tracked per struct level.
  void begin_struct();
  FieldHeader read_field();
  void end_struct();

  bool read_bool(const FieldHeader& f);  // a bool field's value lives in its header
  bool read_bool_elem();                 // a bool inside a list
  int8_t read_byte();
  int32_t read_i32();                    // also reads i16 (zigzag varint)
  int64_t read_i64();
  double read_double();
  std::string_view read_binary();        // a view into the buffer
  ListHeader read_list();                // list or set header; size checked against the bytes left
  void skip(uint8_t type);               // skips one value of `type` (nested values included)

  size_t pos() const { return pos_; }    // bytes consumed
  uint64_t file_offset() const { return base_ + pos_; }
  [[noreturn]] void error(const std::string& msg) const;

 private:
  uint8_t byte();
  uint64_t varint();
  void skip_depth(uint8_t type, int depth);

  std::string_view buf_;
  uint64_t base_;
  std::string what_;
  size_t pos_ = 0;
  int16_t last_id_[64] = {};  // last field id of each open struct
  int depth_ = 0;
};

}  // namespace tv::thrift
