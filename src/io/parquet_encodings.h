// Parquet value and level encodings: the RLE / bit-packed hybrid (levels, dictionary indices, booleans),
// PLAIN, DELTA_BINARY_PACKED, DELTA_LENGTH_BYTE_ARRAY, DELTA_BYTE_ARRAY and BYTE_STREAM_SPLIT.
// Every decoder checks its input's length; errors begin with `where`.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "io/parquet_meta.h"

namespace tv::pq {

// Appends `count` values of the RLE / bit-packed hybrid (no length prefix) of `bit_width` bits to `out`;
// each value must be <= max_value.
void decode_hybrid(std::string_view data, int bit_width, size_t count, uint32_t max_value,
                   std::vector<uint32_t>& out, const std::string& where);

// Decoded values of one column chunk. Strings are views into the file or into `buffers`.
struct ValueSink {
  PhysicalType type = PhysicalType::Boolean;
  int32_t type_length = 0;                // FIXED_LEN_BYTE_ARRAY
  std::vector<std::string_view> strings;  // BYTE_ARRAY, FIXED_LEN_BYTE_ARRAY, INT96
  std::vector<int64_t> ints;              // BOOLEAN (0 / 1), INT32, INT64
  std::vector<double> reals;              // FLOAT, DOUBLE
  // Owned bytes the views may point into; each string stays put when the sink moves.
  std::vector<std::unique_ptr<std::string>> buffers;
  std::string& new_buffer() { return *buffers.emplace_back(std::make_unique<std::string>()); }
  size_t size() const;
  void append_from(const ValueSink& dict, uint32_t index);  // one dictionary entry
};

// Appends `count` values encoded with `enc` (PLAIN, DELTA_*, BYTE_STREAM_SPLIT, RLE booleans) read from
// `data`. The data must outlive `sink` (strings point into it). Returns the bytes consumed.
size_t decode_values(Encoding enc, std::string_view data, size_t count, ValueSink& sink, const std::string& where);

}  // namespace tv::pq
