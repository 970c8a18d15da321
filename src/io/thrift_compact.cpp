#include "io/thrift_compact.h"

#include <cstring>

#include "core/error.h"

namespace tv::thrift {

namespace {
constexpr int kMaxDepth = 64;  // structs and containers nested deeper than this are refused
}

void CompactReader::error(const std::string& msg) const {
  fail(what_, " at byte ", base_ + pos_, ": ", msg);
}

uint8_t CompactReader::byte() {
  if (pos_ >= buf_.size()) error("truncated (the Thrift data runs past its end)");
  return uint8_t(buf_[pos_++]);
}

uint64_t CompactReader::varint() {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    const uint8_t b = byte();
    v |= uint64_t(b & 0x7f) << shift;
    if (!(b & 0x80)) return v;
  }
  error("varint longer than 10 bytes");
}

void CompactReader::begin_struct() {
  if (depth_ + 1 >= kMaxDepth) error("structs nested too deeply");
  last_id_[++depth_] = 0;
}

void CompactReader::end_struct() {
  if (depth_ > 0) --depth_;
}

FieldHeader CompactReader::read_field() {
  const uint8_t b = byte();
  FieldHeader f;
  f.type = b & 0x0f;
  if (f.type == kStop) return f;
  const uint8_t delta = b >> 4;
  if (delta != 0) {
    f.id = int16_t(last_id_[depth_] + delta);
  } else {
    const int32_t id = read_i32();
    if (id < INT16_MIN || id > INT16_MAX) error("field id out of range");
    f.id = int16_t(id);
  }
  if (f.type > kStruct) error(str_cat("unknown field type ", int(f.type)));
  last_id_[depth_] = f.id;
  return f;
}

bool CompactReader::read_bool(const FieldHeader& f) {
  if (f.type != kBoolTrue && f.type != kBoolFalse) error("expected a bool field");
  return f.type == kBoolTrue;
}

bool CompactReader::read_bool_elem() {
  const uint8_t b = byte();
  return b == 1;  // compact lists write 1 for true and 0 or 2 for false
}

int8_t CompactReader::read_byte() { return int8_t(byte()); }

int32_t CompactReader::read_i32() {
  const uint64_t u = varint();
  if (u > 0xffffffffull) error("i32 value out of range");
  const uint32_t z = uint32_t(u);
  return int32_t((z >> 1) ^ (~(z & 1) + 1));
}

int64_t CompactReader::read_i64() {
  const uint64_t z = varint();
  return int64_t((z >> 1) ^ (~(z & 1) + 1));
}

double CompactReader::read_double() {
  if (buf_.size() - pos_ < 8) error("truncated double");
  double d;
  std::memcpy(&d, buf_.data() + pos_, 8);
  pos_ += 8;
  return d;
}

std::string_view CompactReader::read_binary() {
  const uint64_t n = varint();
  if (n > buf_.size() - pos_) error(str_cat("a string of ", n, " bytes runs past the end (", buf_.size() - pos_, " left)"));
  std::string_view s = buf_.substr(pos_, size_t(n));
  pos_ += size_t(n);
  return s;
}

ListHeader CompactReader::read_list() {
  const uint8_t b = byte();
  ListHeader h;
  h.elem_type = b & 0x0f;
  uint64_t n = b >> 4;
  if (n == 15) n = varint();
  // Every element takes at least one byte (bools and bytes included), so a larger count cannot be right.
  if (n > buf_.size() - pos_) error(str_cat("a list of ", n, " elements is longer than the bytes left"));
  h.size = uint32_t(n);
  return h;
}

void CompactReader::skip(uint8_t type) { skip_depth(type, 0); }

void CompactReader::skip_depth(uint8_t type, int depth) {
  if (depth > kMaxDepth) error("values nested too deeply");
  switch (type) {
    case kBoolTrue:
    case kBoolFalse:
      return;  // a bool field's value is in its header
    case kByte:
      byte();
      return;
    case kI16:
    case kI32:
    case kI64:
      varint();
      return;
    case kDouble:
      read_double();
      return;
    case kBinary:
      read_binary();
      return;
    case kList:
    case kSet: {
      const ListHeader h = read_list();
      for (uint32_t i = 0; i < h.size; ++i) {
        if (h.elem_type == kBoolTrue || h.elem_type == kBoolFalse) byte();
        else skip_depth(h.elem_type, depth + 1);
      }
      return;
    }
    case kMap: {
      const uint64_t n = varint();
      if (n == 0) return;
      if (n > buf_.size() - pos_) error("a map longer than the bytes left");
      const uint8_t kv = byte();
      for (uint64_t i = 0; i < n; ++i) {
        for (uint8_t t : {uint8_t(kv >> 4), uint8_t(kv & 0x0f)}) {
          if (t == kBoolTrue || t == kBoolFalse) byte();
          else skip_depth(t, depth + 1);
        }
      }
      return;
    }
    case kStruct: {
      begin_struct();
      for (;;) {
        const FieldHeader f = read_field();
        if (f.type == kStop) break;
        skip_depth(f.type, depth + 1);
      }
      end_struct();
      return;
    }
    default:
      error(str_cat("cannot skip a value of unknown type ", int(type)));
  }
}

}  // namespace tv::thrift
