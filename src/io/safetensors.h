// safetensors files: an 8-byte little-endian header length, a JSON header mapping tensor names to
// {dtype, shape, data_offsets} (plus "__metadata__": string -> string), then raw little-endian data.
// Reading memory-maps the file; writing goes to "<path>.tmp" and is renamed into place, so a crash
// never leaves a half-written checkpoint under the real name.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/named_tensor.h"
#include "core/tensor.h"
#include "io/mapped_file.h"
#include "io/stored_dtype.h"
#include "io/tensor_source.h"

namespace tv {

class SafetensorsFile : public TensorSource {
 public:
  // Throws tv::Error naming the file and what is malformed.
  explicit SafetensorsFile(const std::string& path);
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const override { return path_; }
  const char* format() const override { return "safetensors"; }
  const std::map<std::string, std::string>& metadata() const override { return metadata_; }
  std::vector<std::string> names() const override;  // in file order
  bool has(const std::string& name) const override { return entries_.count(name) > 0; }
  Shape shape(const std::string& name) const override;
  std::string dtype_name(const std::string& name) const override;
  Tensor get(const std::string& name) const override;
  using TensorSource::get;  // get(name, dtype, shape)

 private:
  struct Entry {
    StoredDType dtype;
    Shape shape;
    size_t begin = 0, end = 0;
  };
  std::string path_;
  std::map<std::string, Entry> entries_;
  std::vector<std::string> order_;
  std::map<std::string, std::string> metadata_;
  MappedFile file_;
  size_t data_start_ = 0;
  const unsigned char* bytes() const { return reinterpret_cast<const unsigned char*>(file_.data()); }
};


// Writes atomically (temporary file + rename). Names must be unique.
void save_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace tv
