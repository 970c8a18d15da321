#include "io/tensor_source.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "io/safetensors.h"
#include "io/torch_file.h"

namespace tv {

Tensor TensorSource::get(const std::string& name, DType dtype, const Shape& expect_shape) const {
  const Shape stored = shape(name);  // checked before anything is read or allocated
  if (!expect_shape.empty() && stored != expect_shape)
    fail(path(), ": tensor '", name, "' has shape ", shape_str(stored), ", expected ", shape_str(expect_shape));
  Tensor t = get(name);
  if (t.dtype() == dtype) return t;
  return t.to(dtype);
}

std::unique_ptr<TensorSource> open_tensor_file(const std::string& path) {
  unsigned char head[9] = {};
  size_t got = 0;
  uint64_t file_size = 0;
  if (FILE* f = std::fopen(path.c_str(), "rb")) {
    got = std::fread(head, 1, sizeof head, f);
    if (std::fseek(f, 0, SEEK_END) == 0) file_size = uint64_t(std::ftell(f));
    std::fclose(f);
  } else {
    fail(path, ": cannot open (", std::strerror(errno), ")");
  }
  if (got >= 4 && std::memcmp(head, "PK\x03\x04", 4) == 0) return std::make_unique<TorchFile>(path);
  // A safetensors file starts with its header length (8 bytes, little-endian) and then the JSON header.
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = header_len << 8 | head[i];
  if (got == 9 && header_len <= file_size - 8 && head[8] == '{') return std::make_unique<SafetensorsFile>(path);
  if (got >= 2 && head[0] == 0x80 && head[1] <= 5)
    fail(path, ": a pickle file, as torch.save wrote before PyTorch 1.6 (or with _use_new_zipfile_serialization="
               "False); tinyvlm reads the zip format: re-save it with torch.save(torch.load(path), path) under a "
               "recent PyTorch");
  std::string shown;
  for (size_t i = 0; i < got && i < 8; ++i) {
    char hex[4];
    std::snprintf(hex, sizeof hex, "%02x", head[i]);
    if (i) shown += ' ';
    shown += hex;
  }
  fail(path, ": neither a safetensors file (an 8-byte header length, then a JSON header starting with '{') nor a "
             "torch.save checkpoint (a zip archive starting with PK\\x03\\x04); the file starts with ",
       got ? shown : std::string("nothing (it is empty)"));
}

}  // namespace tv
