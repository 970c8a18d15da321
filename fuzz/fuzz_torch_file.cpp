// torch.save files: the zip reader, the pickle machine, storages and views, and reading each tensor.
#include <cstdint>

#include "core/error.h"
#include "fuzz_util.h"
#include "io/torch_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = tv::fuzz::input_file(data, size, ".pt");
  try {
    tv::TorchFile f(path);
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
