#include <cmath>

#include "core/ops.h"
#include "core/profile.h"
#include "kernels/cpu/cpu_ops.h"
#include "ops/arg_checks.h"
#include "ops/dispatch.h"

namespace tv::ops {

void adamw_step(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, const AdamWParams& p) {
  TV_PROFILE("adamw_step");
  const char* op = "adamw_step";
  check_contiguous(param, op, "param");
  check_like(grad, param, op, "grad");
  check_like(m, param, op, "m");
  check_like(v, param, op, "v");
  if (p.step < 1) fail(op, ": step is 1-based, got ", p.step);
  if (!(p.beta1 >= 0 && p.beta1 < 1 && p.beta2 >= 0 && p.beta2 < 1))
    fail(op, ": betas should lie in [0, 1), got ", p.beta1, ", ", p.beta2);
  require_cpu(common_device(op, &param, &grad, &m, &v), op);
  TV_DISPATCH_FLOAT(param.dtype(), op,
                    cpu::adamw_step<T>(param.data<T>(), grad.data<T>(), m.data<T>(), v.data<T>(), param.numel(), p.lr,
                                       p.beta1, p.beta2, p.eps, p.weight_decay, p.step, p.grad_scale));
}

double grad_norm(const std::vector<Tensor*>& grads) {
  TV_PROFILE("grad_norm");
  double ss = 0;
  for (const Tensor* g : grads)
    if (g && g->defined()) ss += sum_squares(*g);
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
