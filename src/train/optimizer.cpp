#include "train/optimizer.h"

#include <algorithm>
#include <cmath>

namespace tv {

double lr_at(int64_t step, int64_t warmup, int64_t total, double peak) {
  if (step < warmup) return peak * double(step) / double(warmup);
  if (total <= warmup) return peak;
  double progress = double(step - warmup) / double(total - warmup);
  return peak * (0.1 + 0.9 * (1.0 + std::cos(M_PI * progress)) / 2.0);
}

void AdamW::apply(ParamStore& params, double lr, double grad_scale) {
  ++step;
  ops::AdamWParams p;
  p.lr = lr;
  p.grad_scale = grad_scale;
  p.beta1 = beta1;
  p.beta2 = beta2;
  p.eps = eps;
  p.weight_decay = weight_decay;
  // One pass over every parameter of a dtype (one parallel region instead of one per tensor).
  std::map<DType, std::vector<ops::AdamWTensors>> by_dtype;
  for (Param& q : params.all()) {
    if (!q.has_grad) continue;
    if (!only.empty() && !std::binary_search(only.begin(), only.end(), q.name)) continue;
    Tensor* g = q.grad_or_null();
    if (!g) continue;
    auto it = m.find(q.name);
    if (it == m.end()) {
      m[q.name] = Tensor::zeros(q.value.shape(), q.value.dtype(), q.value.device());
      v[q.name] = Tensor::zeros(q.value.shape(), q.value.dtype(), q.value.device());
    }
    by_dtype[q.value.dtype()].push_back({&q.value, g, &m[q.name], &v[q.name], ++steps[q.name]});
  }
  for (const auto& [dtype, ts] : by_dtype) ops::adamw_step_multi(ts, p);
}

std::vector<NamedTensor> AdamW::state_tensors() const {
  std::vector<NamedTensor> out;
  for (const auto& [name, t] : m) out.push_back({"adam_m." + name, t});
  for (const auto& [name, t] : v) out.push_back({"adam_v." + name, t});
  for (const auto& [name, t] : steps) out.push_back({"adam_t." + name, Tensor::from_i32({1}, {int32_t(t)})});
  return out;
}

void AdamW::load_state(const TensorSource& f, ParamStore& params) {
  m.clear();
  v.clear();
  steps.clear();
  for (Param& q : params.all()) {
    if (!q.trainable) continue;
    std::string mn = "adam_m." + q.name, vn = "adam_v." + q.name;
    if (!f.has(mn) || !f.has(vn)) continue;  // a parameter that never received an update
    m[q.name] = f.get(mn, q.value.dtype(), q.value.shape()).to(q.value.device());
    v[q.name] = f.get(vn, q.value.dtype(), q.value.shape()).to(q.value.device());
    if (f.has("adam_t." + q.name)) steps[q.name] = f.get("adam_t." + q.name).data<int32_t>()[0];
  }
}

}  // namespace tv
