#include "train/optimizer.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace tv {

double lr_at(int64_t step, int64_t warmup, int64_t total, double peak) {
  if (step < warmup) return peak * double(step) / double(warmup);
  if (total <= warmup) return peak;
  double progress = double(step - warmup) / double(total - warmup);
  return peak * (0.1 + 0.9 * (1.0 + std::cos(M_PI * progress)) / 2.0);
}

void check_optimizer_settings(const AdamW& opt, double lr, double max_grad_norm, const std::string& source) {
  auto in = [&](const char* what, double v, bool ok, const char* range) {
    if (!std::isfinite(v) || !ok) fail(source, ": ", what, " = ", v, " is out of range (expected ", range, ")");
  };
  in("the learning rate", lr, lr > 0 && lr <= 10, "0 < lr <= 10");
  in("AdamW beta1", opt.beta1, opt.beta1 >= 0 && opt.beta1 < 1, "0 <= beta1 < 1");
  in("AdamW beta2", opt.beta2, opt.beta2 >= 0 && opt.beta2 < 1, "0 <= beta2 < 1");
  in("AdamW eps", opt.eps, opt.eps > 0 && opt.eps < 1, "0 < eps < 1");
  in("the weight decay", opt.weight_decay, opt.weight_decay >= 0 && opt.weight_decay <= 10, "0 <= weight decay <= 10");
  in("max_grad_norm", max_grad_norm, max_grad_norm > 0, "a positive number");
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
