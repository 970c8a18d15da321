// safetensors: the header, every tensor's offsets, and reading each tensor (up to a size bound).
#include <cstdint>

#include "core/error.h"
#include "fuzz_util.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = tv::fuzz::input_file(data, size, ".safetensors");
  try {
    tv::SafetensorsFile f(path);
    f.metadata();
    for (const std::string& name : f.names()) {
      f.shape(name);
      f.dtype_name(name);
      f.get(name);
    }
  } catch (const tv::Error&) {
  }
  return 0;
}
