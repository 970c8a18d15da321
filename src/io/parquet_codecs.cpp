#include "io/parquet_codecs.h"

#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include <cstring>

#include "core/error.h"

namespace tv::pq {

namespace {

void inflate_gzip(std::string_view in, size_t expected, std::string& out, const std::string& where) {
  z_stream zs{};
  // 15 + 32: zlib or gzip header, detected from the stream.
  if (inflateInit2(&zs, 15 + 32) != Z_OK) fail(where, ": cannot start the GZIP decoder");
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = uInt(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = uInt(out.size());
  int rc;
  for (;;) {
    rc = inflate(&zs, Z_FINISH);
    if (rc == Z_OK) continue;  // progress made; go on
    if (rc == Z_STREAM_END && zs.avail_in > 0) {
      // Concatenated gzip members: continue with the next one.
      if (inflateReset(&zs) != Z_OK) break;
      continue;
    }
    break;  // the end, no progress possible (Z_BUF_ERROR), or corrupt data
  }
  const size_t produced = out.size() - zs.avail_out;
  const bool more_input = zs.avail_in > 0;
  inflateEnd(&zs);
  if (rc == Z_BUF_ERROR && zs.avail_out == 0)
    fail(where, ": GZIP data decompress to more than the ", expected, " bytes the page header says");
  if (rc != Z_STREAM_END) fail(where, ": GZIP data are corrupt or truncated (zlib error ", rc, ")");
  if (produced != expected || more_input)
    fail(where, ": GZIP data decompress to ", produced, " bytes, the page header says ", expected);
}

}  // namespace

void decompress(Codec codec, std::string_view in, size_t expected, std::string& out, const std::string& where) {
  out.resize(expected);
  switch (codec) {
    case Codec::Uncompressed:
      if (in.size() != expected)
        fail(where, ": an uncompressed page of ", in.size(), " bytes, the page header says ", expected);
      if (expected) std::memcpy(out.data(), in.data(), expected);
      return;
    case Codec::Snappy: {
      size_t n = 0;
      if (snappy_uncompressed_length(in.data(), in.size(), &n) != SNAPPY_OK)
        fail(where, ": SNAPPY data are corrupt (no valid length)");
      if (n != expected) fail(where, ": SNAPPY data decompress to ", n, " bytes, the page header says ", expected);
      // snappy_uncompress checks every copy against both buffers itself, so no separate validation pass.
      size_t len = expected;
      if (snappy_uncompress(in.data(), in.size(), out.data(), &len) != SNAPPY_OK || len != expected)
        fail(where, ": SNAPPY data are corrupt");
      return;
    }
    case Codec::Gzip:
      inflate_gzip(in, expected, out, where);
      return;
    case Codec::Zstd: {
      // One-shot decoding into the fixed-size output: every frame is decoded, and a result larger than
      // `expected` is an error (dstSize_tooSmall) rather than a write past the buffer.
      ZSTD_DCtx* dctx = ZSTD_createDCtx();
      if (!dctx) fail(where, ": cannot start the ZSTD decoder");
      const size_t n = ZSTD_decompressDCtx(dctx, out.data(), out.size(), in.data(), in.size());
      ZSTD_freeDCtx(dctx);
      if (ZSTD_isError(n)) {
        if (ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall)
          fail(where, ": ZSTD data decompress to more than the ", expected, " bytes the page header says");
        fail(where, ": ZSTD data are corrupt (", ZSTD_getErrorName(n), ")");
      }
      if (n != expected) fail(where, ": ZSTD data decompress to ", n, " bytes, the page header says ", expected);
      return;
    }
    default:
      fail(where, ": compression codec ", codec_name(codec), " is not supported (UNCOMPRESSED, SNAPPY, GZIP, ZSTD are)");
  }
}

}  // namespace tv::pq
