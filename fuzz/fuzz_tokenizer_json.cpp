// tokenizer.json: the reader, then encode and decode with what it built.
#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.h"
#include "tokenizer/bpe.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    tv::tok::Tokenizer t = tv::tok::Tokenizer::from_json(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.json");
    std::vector<int32_t> ids = t.encode("Hello, world! <s> 123 \xc3\xa9t\xc3\xa9 </s>");
    t.decode(ids);
    t.to_json();
  } catch (const tv::Error&) {
  }
  return 0;
}
