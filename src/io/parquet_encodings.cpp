#include "io/parquet_encodings.h"

#include <cstring>

#include "core/error.h"

namespace tv::pq {

namespace {

// `bw` (<= 64) bits at bit `bitpos` of p[0, nbytes), least significant bit first; bits past the end read 0.
uint64_t bits_at(const uint8_t* p, size_t nbytes, uint64_t bitpos, int bw) {
  if (bw == 0) return 0;
  const size_t byte = size_t(bitpos >> 3);
  uint8_t tmp[16] = {};
  if (byte < nbytes) std::memcpy(tmp, p + byte, std::min<size_t>(9, nbytes - byte));
  unsigned __int128 w = 0;
  std::memcpy(&w, tmp, 16);
  w >>= (bitpos & 7);
  const uint64_t v = uint64_t(w);
  return bw == 64 ? v : v & ((uint64_t(1) << bw) - 1);
}

struct ByteCursor {
  const uint8_t* p;
  size_t n, pos = 0;
  const std::string& where;
  const char* what;
  [[noreturn]] void truncated() const { fail(where, ": ", what, " truncated at byte ", pos, " of ", n); }
  uint8_t byte() {
    if (pos >= n) truncated();
    return p[pos++];
  }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      const uint8_t b = byte();
      v |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    fail(where, ": ", what, ": varint longer than 10 bytes at byte ", pos);
  }
  int64_t zigzag() {
    const uint64_t z = varint();
    return int64_t((z >> 1) ^ (~(z & 1) + 1));
  }
};

// DELTA_BINARY_PACKED: `count` values (as 64-bit two's complement; 32-bit columns keep the low half).
// Returns the bytes consumed.
size_t decode_delta_binary(std::string_view data, size_t count, std::vector<int64_t>& out, const std::string& where) {
  ByteCursor c{reinterpret_cast<const uint8_t*>(data.data()), data.size(), 0, where, "DELTA_BINARY_PACKED data"};
  const uint64_t block_size = c.varint(), miniblocks = c.varint(), total = c.varint();
  uint64_t value = uint64_t(c.zigzag());
  if (block_size == 0 || block_size % 128 != 0 || block_size > (1u << 20) || miniblocks == 0 ||
      block_size % miniblocks != 0 || (block_size / miniblocks) % 32 != 0)
    fail(where, ": DELTA_BINARY_PACKED header has block size ", block_size, " and ", miniblocks, " miniblocks");
  if (total < count) fail(where, ": DELTA_BINARY_PACKED holds ", total, " values, the page needs ", count);
  if (count == 0) return c.pos;
  const uint64_t per_mini = block_size / miniblocks;
  out.push_back(int64_t(value));
  size_t done = 1;
  uint8_t widths[1024];
  if (miniblocks > sizeof(widths)) fail(where, ": DELTA_BINARY_PACKED has ", miniblocks, " miniblocks per block");
  while (done < count) {
    const uint64_t min_delta = uint64_t(c.zigzag());
    for (uint64_t m = 0; m < miniblocks; ++m) widths[m] = c.byte();
    for (uint64_t m = 0; m < miniblocks && done < count; ++m) {
      const int bw = widths[m];
      if (bw > 64) fail(where, ": DELTA_BINARY_PACKED bit width ", bw, " at byte ", c.pos);
      const size_t take = size_t(std::min<uint64_t>(per_mini, count - done));
      const size_t need = (take * size_t(bw) + 7) / 8;
      if (need > c.n - c.pos) c.truncated();
      const uint8_t* base = c.p + c.pos;
      const size_t avail = c.n - c.pos;
      for (size_t k = 0; k < take; ++k) {
        value += min_delta + bits_at(base, avail, uint64_t(k) * bw, bw);
        out.push_back(int64_t(value));
      }
      done += take;
      // Miniblocks are padded to full size; a writer may leave the last one short.
      c.pos += size_t(std::min<uint64_t>(per_mini * bw / 8, avail));
    }
  }
  return c.pos;
}

// Reads `count` lengths as DELTA_BINARY_PACKED, then the bytes; appends views.
size_t decode_delta_length(std::string_view data, size_t count, std::vector<std::string_view>& out,
                           const std::string& where) {
  std::vector<int64_t> lens;
  lens.reserve(count);
  size_t pos = decode_delta_binary(data, count, lens, where);
  for (int64_t len : lens) {
    if (len < 0 || uint64_t(len) > data.size() - pos)
      fail(where, ": DELTA_LENGTH_BYTE_ARRAY value of ", len, " bytes runs past the page end (", data.size() - pos, " left)");
    out.push_back(data.substr(pos, size_t(len)));
    pos += size_t(len);
  }
  return pos;
}

}  // namespace

void decode_hybrid(std::string_view data, int bit_width, size_t count, uint32_t max_value, std::vector<uint32_t>& out,
                   const std::string& where) {
  if (bit_width < 0 || bit_width > 32) fail(where, ": RLE bit width ", bit_width, " is out of range");
  ByteCursor c{reinterpret_cast<const uint8_t*>(data.data()), data.size(), 0, where, "RLE / bit-packed data"};
  const size_t value_bytes = size_t(bit_width + 7) / 8;
  const size_t end = out.size() + count;
  out.reserve(end);
  while (out.size() < end) {
    const uint64_t header = c.varint();
    if (header & 1) {  // bit-packed: (header >> 1) groups of 8 values
      const uint64_t groups = header >> 1;
      const uint64_t bytes = groups * uint64_t(bit_width);  // 8 values of bit_width bits per group
      if (groups > (uint64_t(1) << 40)) fail(where, ": bit-packed run of ", groups, " groups at byte ", c.pos);
      const size_t avail = size_t(std::min<uint64_t>(bytes, c.n - c.pos));
      // A writer may cut the final run short of its padding; the values present are still read.
      const uint64_t have = bit_width ? uint64_t(avail) * 8 / bit_width : groups * 8;
      const size_t take = size_t(std::min<uint64_t>(std::min<uint64_t>(groups * 8, have), end - out.size()));
      if (take == 0 && groups > 0) c.truncated();
      const uint8_t* base = c.p + c.pos;
      for (size_t k = 0; k < take; ++k) {
        const uint32_t v = uint32_t(bits_at(base, avail, uint64_t(k) * bit_width, bit_width));
        if (v > max_value) fail(where, ": value ", v, " is above the maximum ", max_value, " (at byte ", c.pos, ")");
        out.push_back(v);
      }
      c.pos += avail;
    } else {  // RLE run: (header >> 1) copies of one value
      const uint64_t run = header >> 1;
      if (value_bytes > c.n - c.pos) c.truncated();
      uint32_t v = 0;
      for (size_t b = 0; b < value_bytes; ++b) v |= uint32_t(c.p[c.pos + b]) << (8 * b);
      c.pos += value_bytes;
      if (v > max_value) fail(where, ": value ", v, " is above the maximum ", max_value, " (at byte ", c.pos, ")");
      const size_t take = size_t(std::min<uint64_t>(run, end - out.size()));
      out.insert(out.end(), take, v);
    }
  }
}

size_t ValueSink::size() const {
  switch (type) {
    case PhysicalType::Boolean:
    case PhysicalType::Int32:
    case PhysicalType::Int64:
      return ints.size();
    case PhysicalType::Float:
    case PhysicalType::Double:
      return reals.size();
    default:
      return strings.size();
  }
}

void ValueSink::append_from(const ValueSink& dict, uint32_t i) {
  switch (type) {
    case PhysicalType::Boolean:
    case PhysicalType::Int32:
    case PhysicalType::Int64:
      ints.push_back(dict.ints[i]);
      return;
    case PhysicalType::Float:
    case PhysicalType::Double:
      reals.push_back(dict.reals[i]);
      return;
    default:
      strings.push_back(dict.strings[i]);
  }
}

size_t decode_values(Encoding enc, std::string_view data, size_t count, ValueSink& sink, const std::string& where) {
  const auto* p = reinterpret_cast<const uint8_t*>(data.data());
  const size_t n = data.size();
  auto need = [&](uint64_t bytes) {
    if (bytes > n)
      fail(where, ": ", count, " ", type_name(sink.type), " values need ", bytes, " bytes, the page holds ", n);
  };
  const PhysicalType t = sink.type;
  size_t width = 0;  // fixed-width types
  switch (t) {
    case PhysicalType::Int32: case PhysicalType::Float: width = 4; break;
    case PhysicalType::Int64: case PhysicalType::Double: width = 8; break;
    case PhysicalType::Int96: width = 12; break;
    case PhysicalType::FixedLenByteArray:
      if (sink.type_length <= 0) fail(where, ": FIXED_LEN_BYTE_ARRAY with length ", sink.type_length);
      width = size_t(sink.type_length);
      break;
    default: break;
  }

  switch (enc) {
    case Encoding::Plain: {
      if (t == PhysicalType::Boolean) {
        need((uint64_t(count) + 7) / 8);
        for (size_t i = 0; i < count; ++i) sink.ints.push_back((p[i >> 3] >> (i & 7)) & 1);
        return (count + 7) / 8;
      }
      if (t == PhysicalType::ByteArray) {
        size_t pos = 0;
        for (size_t i = 0; i < count; ++i) {
          if (n - pos < 4) fail(where, ": BYTE_ARRAY value ", i, " of ", count, ": its length runs past the page end");
          uint32_t len;
          std::memcpy(&len, p + pos, 4);
          pos += 4;
          if (len > n - pos)
            fail(where, ": BYTE_ARRAY value ", i, " of ", len, " bytes runs past the page end (", n - pos, " left)");
          sink.strings.push_back(data.substr(pos, len));
          pos += len;
        }
        return pos;
      }
      need(uint64_t(count) * width);
      for (size_t i = 0; i < count; ++i) {
        const uint8_t* v = p + i * width;
        switch (t) {
          case PhysicalType::Int32: { int32_t x; std::memcpy(&x, v, 4); sink.ints.push_back(x); break; }
          case PhysicalType::Int64: { int64_t x; std::memcpy(&x, v, 8); sink.ints.push_back(x); break; }
          case PhysicalType::Float: { float x; std::memcpy(&x, v, 4); sink.reals.push_back(x); break; }
          case PhysicalType::Double: { double x; std::memcpy(&x, v, 8); sink.reals.push_back(x); break; }
          default: sink.strings.push_back(data.substr(i * width, width)); break;
        }
      }
      return count * width;
    }
    case Encoding::Rle: {
      if (t != PhysicalType::Boolean) fail(where, ": RLE values are only defined for BOOLEAN columns");
      need(4);
      uint32_t len;
      std::memcpy(&len, p, 4);
      need(uint64_t(len) + 4);
      std::vector<uint32_t> bits;
      decode_hybrid(data.substr(4, len), 1, count, 1, bits, where);
      sink.ints.insert(sink.ints.end(), bits.begin(), bits.end());
      return 4 + size_t(len);
    }
    case Encoding::DeltaBinaryPacked: {
      if (t != PhysicalType::Int32 && t != PhysicalType::Int64)
        fail(where, ": DELTA_BINARY_PACKED is only defined for INT32 and INT64 columns");
      const size_t before = sink.ints.size();
      const size_t used = decode_delta_binary(data, count, sink.ints, where);
      if (t == PhysicalType::Int32)
        for (size_t i = before; i < sink.ints.size(); ++i) sink.ints[i] = int32_t(uint32_t(uint64_t(sink.ints[i])));
      return used;
    }
    case Encoding::DeltaLengthByteArray:
      if (t != PhysicalType::ByteArray) fail(where, ": DELTA_LENGTH_BYTE_ARRAY is only defined for BYTE_ARRAY columns");
      return decode_delta_length(data, count, sink.strings, where);
    case Encoding::DeltaByteArray: {
      if (t != PhysicalType::ByteArray && t != PhysicalType::FixedLenByteArray)
        fail(where, ": DELTA_BYTE_ARRAY is only defined for BYTE_ARRAY and FIXED_LEN_BYTE_ARRAY columns");
      std::vector<int64_t> prefix;
      prefix.reserve(count);
      size_t pos = decode_delta_binary(data, count, prefix, where);
      std::vector<std::string_view> suffix;
      suffix.reserve(count);
      pos += decode_delta_length(data.substr(pos), count, suffix, where);
      // Each value is a prefix of the one before plus its suffix: rebuilt into one owned buffer. The
      // total is bounded so that a few bytes of prefix lengths cannot ask for gigabytes.
      uint64_t total = 0, prev = 0;
      for (size_t i = 0; i < count; ++i) {
        if (prefix[i] < 0 || uint64_t(prefix[i]) > prev)
          fail(where, ": DELTA_BYTE_ARRAY value ", i, " has prefix ", prefix[i], " longer than the value before (", prev, ")");
        prev = uint64_t(prefix[i]) + suffix[i].size();
        total += prev;
      }
      if (total > uint64_t(n) * 1024 + (1u << 20))
        fail(where, ": DELTA_BYTE_ARRAY values total ", total, " bytes from a page of ", n);
      std::string& buf = sink.new_buffer();
      buf.resize(size_t(total));
      size_t at = 0, prev_at = 0;
      for (size_t i = 0; i < count; ++i) {
        const size_t pre = size_t(prefix[i]);
        if (pre) std::memmove(buf.data() + at, buf.data() + prev_at, pre);
        if (!suffix[i].empty()) std::memcpy(buf.data() + at + pre, suffix[i].data(), suffix[i].size());
        const size_t len = pre + suffix[i].size();
        if (t == PhysicalType::FixedLenByteArray && len != width)
          fail(where, ": DELTA_BYTE_ARRAY value ", i, " has ", len, " bytes, the column's length is ", width);
        sink.strings.emplace_back(buf.data() + at, len);
        prev_at = at;
        at += len;
      }
      return pos;
    }
    case Encoding::ByteStreamSplit: {
      if (width == 0) fail(where, ": BYTE_STREAM_SPLIT is not defined for ", type_name(t), " columns");
      need(uint64_t(count) * width);
      std::string tmp(width, '\0');
      std::string* owned = nullptr;
      if (t == PhysicalType::FixedLenByteArray || t == PhysicalType::Int96) {
        owned = &sink.new_buffer();
        owned->resize(count * width);
      }
      for (size_t i = 0; i < count; ++i) {
        char* v = owned ? owned->data() + i * width : tmp.data();
        for (size_t b = 0; b < width; ++b) v[b] = char(p[b * count + i]);
        switch (t) {
          case PhysicalType::Int32: { int32_t x; std::memcpy(&x, v, 4); sink.ints.push_back(x); break; }
          case PhysicalType::Int64: { int64_t x; std::memcpy(&x, v, 8); sink.ints.push_back(x); break; }
          case PhysicalType::Float: { float x; std::memcpy(&x, v, 4); sink.reals.push_back(x); break; }
          case PhysicalType::Double: { double x; std::memcpy(&x, v, 8); sink.reals.push_back(x); break; }
          default: sink.strings.emplace_back(v, width); break;
        }
      }
      return count * width;
    }
    default:
      fail(where, ": value encoding ", encoding_name(enc), " is not supported here");
  }
}

}  // namespace tv::pq
