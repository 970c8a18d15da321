// safetensors files: an 8-byte little-endian header length, a JSON header mapping tensor names to
// {dtype, shape, data_offsets} (plus "__metadata__": string -> string), then raw little-endian data.
// Reading memory-maps the file; writing goes to "<path>.tmp" and is renamed into place, so a crash
// never leaves a half-written checkpoint under the real name.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace tv {

class SafetensorsFile {
 public:
  // Throws tv::Error naming the file and what is malformed.
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  std::vector<std::string> names() const;  // in file order
  bool has(const std::string& name) const { return entries_.count(name) > 0; }
  Shape shape(const std::string& name) const;
  // The tensor as stored, copied into a new host tensor. f16 and i64 are converted (to f32 / i32), since
  // the engine has no such dtypes; every other stored dtype is returned as is.
  Tensor get(const std::string& name) const;
  // The tensor converted to `dtype` (float types only) and checked against `shape` (empty: any shape).
  Tensor get(const std::string& name, DType dtype, const Shape& expect_shape = {}) const;

 private:
  struct Entry {
    std::string dtype;
    Shape shape;
    size_t begin = 0, end = 0;
  };
  std::string path_;
  std::map<std::string, Entry> entries_;
  std::vector<std::string> order_;
  std::map<std::string, std::string> metadata_;
  const unsigned char* map_ = nullptr;
  size_t map_size_ = 0;
  size_t data_start_ = 0;
};

struct NamedTensor {
  std::string name;
  Tensor tensor;  // any device; copied to host for writing
};

// Writes atomically (temporary file + rename). Names must be unique.
void save_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace tv
