// torch.save checkpoints (PyTorch >= 1.6): a zip archive of stored entries — "<archive>/data.pkl", a pickle
// (protocol 2) of the saved object whose tensors refer by key to raw little-endian storages
// "<archive>/data/<key>". The pickle is read by a restricted interpreter that only builds plain data
// (dicts, lists, tuples, strings, numbers) and tensors; any other class or function it names is an error,
// so loading a file never runs code from it.
//
// The weights are the top-level dict's "model_state_dict" (the original's training checkpoints) or else
// the top-level dict itself (a plain torch.save(model.state_dict()), e.g. torchvision's weights). The
// rest (optimizer state, epoch, val_loss) is parsed and ignored, except that top-level numbers and
// booleans next to model_state_dict are exposed as metadata strings ("epoch" -> "3").
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/stored_dtype.h"
#include "io/tensor_source.h"

namespace tv {

class MappedFile;

class TorchFile : public TensorSource {
 public:
  // Throws tv::Error naming the file, the byte offset and what was expected.
  explicit TorchFile(const std::string& path);
  ~TorchFile() override;
  TorchFile(const TorchFile&) = delete;
  TorchFile& operator=(const TorchFile&) = delete;

  const std::string& path() const override { return path_; }
  const char* format() const override { return "torch.save"; }
  const std::map<std::string, std::string>& metadata() const override { return metadata_; }
  std::vector<std::string> names() const override { return order_; }
  bool has(const std::string& name) const override { return entries_.count(name) > 0; }
  Shape shape(const std::string& name) const override;
  std::string dtype_name(const std::string& name) const override;
  // Copies the tensor out of its storage following its offset and strides (views, transposes and
  // tensors sharing one storage load as the tensors they were).
  Tensor get(const std::string& name) const override;
  using TensorSource::get;  // get(name, dtype, shape)

  // "model_state_dict" or "" (the weights were the top-level dict).
  const std::string& state_dict_key() const { return state_key_; }
  // Entries of the state dict that are not tensors (skipped).
  int64_t skipped_entries() const { return skipped_; }

  // The tensor's layout in the file, for tests and diagnostics.
  struct Layout {
    StoredDType dtype = StoredDType::Unsupported;
    std::string torch_dtype;       // as PyTorch names it ("FloatStorage", "bfloat16", ...), for messages
    size_t elem_size = 0;          // bytes per element (also for dtypes tinyvlm cannot load)
    Shape shape, stride;           // in elements
    int64_t offset = 0;            // storage offset, in elements
    std::string storage;           // the storage's key: its data is the entry "<archive>/data/<key>"
    uint64_t storage_begin = 0, storage_bytes = 0;  // the storage's byte range in the file
  };
  const Layout& layout(const std::string& name) const;

 private:
  std::string path_;
  std::unique_ptr<MappedFile> map_;
  std::map<std::string, Layout> entries_;
  std::vector<std::string> order_;
  std::map<std::string, std::string> metadata_;
  std::string state_key_;
  int64_t skipped_ = 0;
};

}  // namespace tv
