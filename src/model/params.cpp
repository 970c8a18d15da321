#include "model/params.h"

#include <algorithm>
#include <cstring>
#include <set>

namespace tv {

Param& ParamStore::add(const std::string& name, const Shape& shape, DType dtype, Device device) {
  if (index_.count(name)) fail("parameter '", name, "' registered twice");
  index_[name] = params_.size();
  Param& p = params_.emplace_back();
  p.name = name;
  p.value = Tensor::zeros(shape, dtype, device);
  p.grad_storage = Tensor::zeros(shape, dtype, device);
  grads_packed_ = false;
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
  grads_packed_ = false;
}

std::vector<ParamStore::GradGroup>& ParamStore::grad_groups() {
  if (grads_packed_) return grad_groups_;
  grads_packed_ = true;
  grad_groups_.clear();
  std::vector<std::vector<Param*>> members;
  for (Param& p : params_) {
    if (!p.has_grad_buffer()) continue;
    size_t g = 0;
    while (g < grad_groups_.size() && (grad_groups_[g].params[0]->value.dtype() != p.value.dtype() ||
                                       grad_groups_[g].params[0]->value.device() != p.value.device()))
      ++g;
    if (g == grad_groups_.size()) grad_groups_.emplace_back();
    grad_groups_[g].params.push_back(&p);
  }
  for (GradGroup& group : grad_groups_) {
    const Param& first = *group.params[0];
    const int64_t align = std::max<int64_t>(1, 64 / int64_t(dtype_size(first.value.dtype())));
    std::vector<int64_t> offsets;
    int64_t total = 0;
    for (const Param* p : group.params) {
      offsets.push_back(total);
      total += (p->value.numel() + align - 1) / align * align;
    }
    group.flat = Tensor::zeros({total}, first.value.dtype(), first.value.device());
    for (size_t i = 0; i < group.params.size(); ++i) {
      Param& p = *group.params[i];
      Tensor view = group.flat.narrow(0, offsets[i], p.value.numel()).view(p.value.shape());
      if (!p.grad_stale) view.copy_from(p.grad_storage);  // what a backward already wrote is kept
      p.grad_storage = view;
      p.grad_stale = false;
    }
  }
  return grad_groups_;
}

void ParamStore::zero_grad() {
  grad_groups();
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
    if (p.value.dtype() == DType::Q8) {  // stored as its blocks' bytes (model/weight_format.h)
      const Shape want = {p.value.size(0), p.value.size(1) / kQ8Block * int64_t(sizeof(BlockQ8))};
      if (fs != want || file.dtype_name(fname) != "U8")
        fail(file.path(), ": tensor '", fname, "' should be q8 blocks, U8 ", shape_str(want), ", got ",
             file.dtype_name(fname), " ", shape_str(fs));
      Tensor t = file.get(fname);
      std::memcpy(p.value.raw(), t.raw(), p.value.nbytes());
      used.insert(fname);
      ++r.loaded;
      continue;
    }
    if (p.value.dtype() == DType::F32 && file.dtype_name(fname) != "F32" && file.metadata().count("weights"))
      fail(file.path(), ": tensor '", fname, "' is stored ", file.dtype_name(fname), " by `convert --weights ",
           file.metadata().at("weights"), "`: such a checkpoint runs forward only (generate, perplexity, ask, chat, "
           "serve) and cannot be trained or loaded as fp32; train from the checkpoint it was converted from");
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
