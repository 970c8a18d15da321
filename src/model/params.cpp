#include "model/params.h"

#include <set>

namespace tv {

Param& ParamStore::add(const std::string& name, const Shape& shape, DType dtype, Device device) {
  if (index_.count(name)) fail("parameter '", name, "' registered twice");
  index_[name] = params_.size();
  Param& p = params_.emplace_back();
  p.name = name;
  p.value = Tensor::zeros(shape, dtype, device);
  p.grad_storage = Tensor::zeros(shape, dtype, device);
  return p;
}

Param* ParamStore::find(const std::string& name) {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &params_[it->second];
}

const Param* ParamStore::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &params_[it->second];
}

Param& ParamStore::at(const std::string& name) {
  Param* p = find(name);
  if (!p) fail("no parameter named '", name, "'");
  return *p;
}

void ParamStore::set_trainable(const std::string& prefix, bool trainable) {
  for (Param& p : params_) {
    if (p.name.compare(0, prefix.size(), prefix) != 0) continue;
    p.trainable = trainable;
    if (trainable && !p.grad_storage.defined()) {
      p.grad_storage = Tensor::zeros(p.value.shape(), p.value.dtype(), p.value.device());
      p.grad_stale = false;
    }
    if (!trainable) p.grad_storage = Tensor();  // frozen: no gradient memory, and ops skip the weight gradient
  }
}

void ParamStore::zero_grad() {
  // Only what a backward wrote needs clearing, and that lazily (Param::grad_stale).
  for (Param& p : params_) {
    if (p.has_grad && p.grad_storage.defined()) p.grad_stale = true;
    p.has_grad = false;
  }
}

int64_t ParamStore::count(bool trainable_only) const {
  int64_t n = 0;
  for (const Param& p : params_)
    if (!trainable_only || p.trainable) n += p.value.numel();
  return n;
}

std::vector<Tensor*> ParamStore::grads() {
  std::vector<Tensor*> g;
  for (Param& p : params_)
    if (Tensor* t = p.grad_or_null()) g.push_back(t);
  return g;
}

std::vector<NamedTensor> ParamStore::named_values(const std::string& strip_prefix) const {
  std::vector<NamedTensor> out;
  for (const Param& p : params_) {
    std::string name = p.name;
    if (!strip_prefix.empty() && name.compare(0, strip_prefix.size(), strip_prefix) == 0)
      name = name.substr(strip_prefix.size());
    out.push_back({name, p.value});
  }
  return out;
}

ParamStore::LoadReport ParamStore::load(const TensorSource& file, const std::string& file_prefix,
                                        bool allow_missing, const std::string& only_prefix) {
  LoadReport r;
  std::set<std::string> used;
  for (Param& p : params_) {
    if (p.name.compare(0, only_prefix.size(), only_prefix) != 0) continue;
    std::string fname = file_prefix + p.name.substr(only_prefix.size());
    if (!file.has(fname)) {
      if (!allow_missing) fail(file.path(), ": missing tensor '", fname, "' (parameter ", p.name, ")");
      ++r.missing;
      continue;
    }
    Shape fs = file.shape(fname);
    if (fs != p.value.shape() && !(shape_numel(fs) == 1 && p.value.numel() == 1))
      fail(file.path(), ": tensor '", fname, "' has shape ", shape_str(fs), ", the model expects ",
           shape_str(p.value.shape()));
    Tensor t = file.get(fname, p.value.dtype());
    p.value.copy_from(t.view(p.value.shape()));
    used.insert(fname);
    ++r.loaded;
  }
  for (const std::string& n : file.names())
    if (!used.count(n) && n.compare(0, file_prefix.size(), file_prefix) == 0) ++r.ignored;
  return r;
}

}  // namespace tv
