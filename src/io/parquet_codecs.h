// Page decompression for Parquet: UNCOMPRESSED, SNAPPY (raw), GZIP (gzip or zlib streams) and ZSTD.
#pragma once
#include <string>
#include <string_view>

#include "io/parquet_meta.h"

namespace tv::pq {

// Decompresses `in` into `out`, which must come out exactly `expected_size` bytes; anything else (a bad
// stream, a shorter or longer result) throws an Error that begins with `where`.
void decompress(Codec codec, std::string_view in, size_t expected_size, std::string& out, const std::string& where);

}  // namespace tv::pq
