// The parameter store: every trainable or frozen tensor of a model under its interchange name
// (docs/spec.md section 3), with its gradient. Optimizers, checkpoints, clipping and (later) data-parallel
// reductions all walk this one list, so a new model part only has to register its tensors here.
#pragma once
#include <deque>
#include <map>
#include <string>
#include <vector>

#include "core/grad_mode.h"
#include "core/tensor.h"
#include "core/named_tensor.h"
#include "io/tensor_source.h"

namespace tv {

struct Param {
  std::string name;
  Tensor value;
  // The gradient buffer, defined only while trainable. Read it through grad_or_null(): after zero_grad()
  // it may still hold the last step's values, cleared on first access or overwritten by the next backward.
  Tensor grad_storage;
  bool trainable = true;
  // Set when a backward pass wrote into the gradient since the last zero_grad(). Like PyTorch's `grad is
  // None`, a parameter the graph did not use this step (an expert that got no token, the temperature of a
  // RoPE layer) is then skipped by the optimizer: no decay, no moment update.
  bool has_grad = false;
  // The gradient is logically zero but its buffer was not cleared (PyTorch's zero_grad(set_to_none=True)):
  // the first product that writes it overwrites it instead, with no zeroing pass and no read of zeros.
  bool grad_stale = false;

  // Whether the parameter has gradient memory (trainable); unlike grad_or_null(), touches nothing.
  bool has_grad_buffer() const { return trainable && grad_storage.defined(); }
  // The gradient (zeros since the last zero_grad() if nothing wrote it), or null when frozen. For reading
  // and scaling: a backward writes through grad_for_backward() or grad_for_write(), which mark it used.
  Tensor* grad_or_null() {
    if (!trainable || !grad_storage.defined()) return nullptr;
    if (grad_stale) {
      grad_storage.zero_();
      grad_stale = false;
    }
    return &grad_storage;
  }
  // The gradient to accumulate into during a backward pass; marks the parameter as used.
  Tensor* grad_for_backward() {
    Tensor* g = grad_or_null();
    if (g) has_grad = true;
    return g;
  }
  // For an op that writes every element of the gradient: Overwrite while the buffer holds nothing of this
  // step (then it is not cleared first), Accumulate otherwise. Marks the parameter as used.
  struct GradWrite {
    Tensor* grad = nullptr;
    ops::GradMode mode = ops::GradMode::Accumulate;
  };
  GradWrite grad_for_write() {
    if (!trainable || !grad_storage.defined()) return {};
    has_grad = true;
    if (!grad_stale) return {&grad_storage, ops::GradMode::Accumulate};
    grad_stale = false;
    return {&grad_storage, ops::GradMode::Overwrite};
  }
};

class ParamStore {
 public:
  // Registers a new zero-initialised parameter; names are unique.
  Param& add(const std::string& name, const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
  Param* find(const std::string& name);
  const Param* find(const std::string& name) const;
  Param& at(const std::string& name);

  std::deque<Param>& all() { return params_; }
  const std::deque<Param>& all() const { return params_; }

  // Trainability by name prefix ("" = everything). Gradients are allocated for trainable params only.
  void set_trainable(const std::string& prefix, bool trainable);
  void zero_grad();
  int64_t count(bool trainable_only = false) const;
  std::vector<Tensor*> grads();  // of trainable params

  // One flat gradient buffer per (dtype, device) of the trainable parameters, every gradient a view into
  // it at a 64-byte-aligned offset, so that one collective (or one clear) covers every gradient. Packed
  // on first use (zero_grad() asks for it) and again after add() or set_trainable() changed the set.
  struct GradGroup {
    Tensor flat;                 // 1-D; the gaps between gradients hold zeros
    std::vector<Param*> params;  // in registration order
  };
  std::vector<GradGroup>& grad_groups();

  // Values under their names, for writing checkpoints.
  std::vector<NamedTensor> named_values(const std::string& strip_prefix = "") const;
  // Loads every registered param (name = file_prefix + name, after stripping `strip_prefix` from ours)
  // from the file (safetensors or torch.save), converting dtypes; shapes must match. Extra tensors in the file are ignored and
  // counted (the original's unused blocks). Missing ones are an error unless `allow_missing`.
  struct LoadReport {
    int64_t loaded = 0, ignored = 0, missing = 0;
  };
  LoadReport load(const TensorSource& file, const std::string& file_prefix = "", bool allow_missing = false,
                  const std::string& only_prefix = "");

 private:
  std::deque<Param> params_;  // deque: references stay valid as params are added
  std::vector<GradGroup> grad_groups_;
  bool grads_packed_ = false;
  std::map<std::string, size_t> index_;
};

}  // namespace tv
