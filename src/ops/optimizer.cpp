#include <cmath>

#include "core/ops.h"
#include "core/profile.h"
#include "ops/arg_checks.h"
#include "ops/dispatch.h"

namespace tv::ops {

static Device check_adamw(const char* op, const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                          int64_t step, const AdamWParams& p) {
  check_contiguous(param, op, "param");
  check_like(grad, param, op, "grad");
  check_like(m, param, op, "m");
  check_like(v, param, op, "v");
  if (step < 1) fail(op, ": step is 1-based, got ", step);
  if (!(p.beta1 >= 0 && p.beta1 < 1 && p.beta2 >= 0 && p.beta2 < 1))
    fail(op, ": betas should lie in [0, 1), got ", p.beta1, ", ", p.beta2);
  return common_device(op, &param, &grad, &m, &v);
}

void adamw_step(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, const AdamWParams& p) {
  TV_PROFILE("adamw_step");
  const char* op = "adamw_step";
  const Device dev = check_adamw(op, param, grad, m, v, p.step, p);
  TV_DISPATCH(dev, "adamw", param.dtype(), op,
                    TV_KERNEL(KT, adamw_step)(param.data<T>(), grad.data<T>(), m.data<T>(), v.data<T>(), param.numel(), p.lr,
                                       p.beta1, p.beta2, p.eps, p.weight_decay, p.step, p.grad_scale));
}

void adamw_step_multi(const std::vector<AdamWTensors>& ts, const AdamWParams& p) {
  TV_PROFILE("adamw_step_multi");
  const char* op = "adamw_step_multi";
  if (ts.empty()) return;
  Device dev = Device::CPU;
  for (const AdamWTensors& t : ts) {
    TV_CHECK(t.param && t.grad && t.m && t.v, op, ": every entry needs param, grad, m and v");
    const Device d = check_adamw(op, *t.param, *t.grad, *t.m, *t.v, t.step, p);
    if (&t == &ts[0]) dev = d;
    same_device(op, dev, d);
    check_same_dtype(*ts[0].param, *t.param, op);
  }
  TV_DISPATCH(dev, "adamw_step_multi", ts[0].param->dtype(), op, {
    std::vector<AdamWSlice<T>> slices;
    for (const AdamWTensors& t : ts)
      slices.push_back({t.param->data<T>(), t.grad->data<T>(), t.m->data<T>(), t.v->data<T>(), t.param->numel(),
                        t.step});
    TV_KERNEL(KT, adamw_multi)(slices.data(), int64_t(slices.size()), p.lr, p.beta1, p.beta2, p.eps, p.weight_decay,
                        p.grad_scale);
  });
}

double grad_norm(const std::vector<Tensor*>& grads) {
  TV_PROFILE("grad_norm");
  // Float gradients in one parallel pass; the per-tensor sums are those of sum_squares, added in order.
  std::vector<const float*> xs;
  std::vector<int64_t> ns;
  // (One pass over one device: the tensors on the first gradient's device.)
  Device dev = Device::CPU;
  for (const Tensor* g : grads)
    if (g && g->defined()) {
      dev = g->device();
      break;
    }
  const char* op = "grad_norm";
  for (const Tensor* g : grads)
    if (g && g->defined() && g->dtype() == DType::F32 && g->device() == dev && g->is_contiguous()) {
      xs.push_back(g->data<float>());
      ns.push_back(g->numel());
    }
  std::vector<double> sums(xs.size());
  if (!xs.empty())
    TV_KERNEL(kernels<float>(dev, "clip_grad_norm", op), sum_squares_multi)(xs.data(), ns.data(), int64_t(xs.size()),
                                                                             sums.data());
  double ss = 0;
  size_t k = 0;
  for (const Tensor* g : grads) {
    if (!g || !g->defined()) continue;
    if (g->dtype() == DType::F32 && g->device() == dev && g->is_contiguous())
      ss += sums[k++];
    else
      ss += sum_squares(*g);
  }
  return std::sqrt(ss);
}

double clip_coefficient(double norm, double max_norm) {
  const double coef = max_norm / (norm + 1e-6);
  return coef < 1.0 ? coef : 1.0;
}

// Built from sum_squares and scale_, so it runs wherever those do. A non-finite norm is returned
// unchanged and leaves the gradients as they are (the caller decides what to do with the step).
double clip_grad_norm(const std::vector<Tensor*>& grads, double max_norm) {
  TV_PROFILE("clip_grad_norm");
  const double total = grad_norm(grads);
  const double coef = max_norm / (total + 1e-6);
  if (coef < 1.0)
    for (Tensor* g : grads)
      if (g && g->defined()) scale_(*g, coef);
  return total;
}

}  // namespace tv::ops
