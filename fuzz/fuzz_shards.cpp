// Token shards: the header checks, then every token read through the bounds-checked reader.
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "fuzz_util.h"
#include "tokenizer/shards.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = tv::fuzz::input_file(data, size, ".bin");
  try {
    tv::tok::ShardReader r(path);
    std::vector<int32_t> out(size_t(r.size() < 4096 ? r.size() : 4096));
    r.read(0, out.size(), out.data());
    volatile int64_t sum = 0;
    for (uint64_t i = 0; i < r.size(); ++i) sum = sum + r.token(i);
    if (r.size()) r.read(r.size() - 1, 1, out.data());
  } catch (const tv::Error&) {
  }
  return 0;
}
