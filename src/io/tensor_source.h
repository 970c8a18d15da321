// One read interface for the checkpoint formats tinyvlm loads weights from: safetensors (tinyvlm's own
// files, converted weights) and torch.save archives (the original's .pt checkpoints, torchvision's
// .pth weights). Weight loaders take a `const TensorSource&`; open_tensor_file() picks the reader.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace tv {

class TensorSource {
 public:
  virtual ~TensorSource() = default;

  virtual const std::string& path() const = 0;
  virtual const char* format() const = 0;  // "safetensors" or "torch.save"
  // String metadata: safetensors' __metadata__; for a torch.save file the numbers stored beside the
  // weights (epoch, val_loss, ...).
  virtual const std::map<std::string, std::string>& metadata() const = 0;
  virtual std::vector<std::string> names() const = 0;  // in file order
  virtual bool has(const std::string& name) const = 0;
  virtual Shape shape(const std::string& name) const = 0;
  // The element type as stored, in safetensors' spelling ("F32", "BF16", ...); a type tinyvlm cannot load
  // is named as the file names it.
  virtual std::string dtype_name(const std::string& name) const = 0;
  // The tensor as stored, copied into a new contiguous host tensor. f16 and i64 are converted (to f32 /
  // i32), since the engine has no such dtypes; bool becomes u8; every other loadable dtype is kept.
  virtual Tensor get(const std::string& name) const = 0;
  // The tensor converted to `dtype` (float types only) and checked against `shape` (empty: any shape).
  Tensor get(const std::string& name, DType dtype, const Shape& expect_shape = {}) const;
};

// Opens a safetensors file or a torch.save zip archive ("PK\x03\x04"), chosen by the file's first bytes.
// Anything else (including the pre-1.6 torch.save format) is an error naming the file.
std::unique_ptr<TensorSource> open_tensor_file(const std::string& path);

}  // namespace tv
