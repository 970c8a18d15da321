// Preference-pair rows (phase 4): one JSONL line in either layout (rlaif-v_formatted message lists with typed
// content and images as paths, data URLs or {bytes, path}; or {image, question, chosen, rejected}), parsed
// without touching the file system, and the base64 decoder its embedded images go through.
#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.h"
#include "data/dpo_data.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    tv::DpoRecord r = tv::parse_dpo_json_line(text, "fuzz.jsonl:1", "fuzz.jsonl:1");
    (void)r;
  } catch (const tv::Error&) {
  }
  std::string out;
  tv::decode_base64_lenient(text, out);
  return 0;
}
