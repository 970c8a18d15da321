// `tinyvlm inspect FILE.parquet`: a Parquet file's schema, row groups, row count, codecs and encodings.
#pragma once
#include <string>

namespace tv::pq {

// The report as text (or, with json, one JSON object). Reads only the footer.
std::string inspect_text(const std::string& path, bool json);

}  // namespace tv::pq
