#include <cmath>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/grain.h"

namespace tv::cpu {

// PyTorch's single-tensor AdamW, operation by operation (scalars rounded to T where PyTorch rounds them):
//   p *= 1 - lr wd;  m.lerp_(g, 1 - b1);  v = v b2 + (1 - b2) g g;
//   p += -lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
namespace {
// `low` picks lerp's form as PyTorch does (weight < 0.5: m + w (g - m), else g - (g - m)(1 - w)); a
// template flag keeps the loop free of branches.
// `scaled`: the gradient is first multiplied by gs (global-norm clipping folded in: the same product
// clipping would have stored, without a pass that writes it back).
template <typename T, bool low, bool scaled>
void adamw_loop(T* param, const T* grad, T* m, T* v, int64_t n, T decay, T w1, T b2, T w2, T neg_step_size, T bc2_sqrt,
                T eps, T gs) {
#pragma omp parallel for simd if (parallel : n >= kParallelGrain) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const T g = scaled ? grad[i] * gs : grad[i];
    const T mi = low ? m[i] + w1 * (g - m[i]) : g - (g - m[i]) * (T(1) - w1);
    const T vi = v[i] * b2 + w2 * g * g;
    const T denom = std::sqrt(vi) / bc2_sqrt + eps;
    param[i] = param[i] * decay + neg_step_size * mi / denom;
    m[i] = mi;
    v[i] = vi;
  }
}
}  // namespace

template <typename T>
void adamw_step(T* param, const T* grad, T* m, T* v, int64_t n, double lr, double beta1, double beta2, double eps,
                double weight_decay, int64_t step, double grad_scale) {
  const double t = double(step);
  const T decay = T(1 - lr * weight_decay);
  const T w1 = T(1 - beta1), b2 = T(beta2), w2 = T(1 - beta2);
  const T neg_step_size = T(-(lr / (1 - std::pow(beta1, t))));
  const T bc2_sqrt = T(std::sqrt(1 - std::pow(beta2, t)));
  const T gs = T(grad_scale);
  const bool scaled = grad_scale != 1.0;
  if (w1 < T(0.5) && scaled)
    adamw_loop<T, true, true>(param, grad, m, v, n, decay, w1, b2, w2, neg_step_size, bc2_sqrt, T(eps), gs);
  else if (w1 < T(0.5))
    adamw_loop<T, true, false>(param, grad, m, v, n, decay, w1, b2, w2, neg_step_size, bc2_sqrt, T(eps), gs);
  else if (scaled)
    adamw_loop<T, false, true>(param, grad, m, v, n, decay, w1, b2, w2, neg_step_size, bc2_sqrt, T(eps), gs);
  else
    adamw_loop<T, false, false>(param, grad, m, v, n, decay, w1, b2, w2, neg_step_size, bc2_sqrt, T(eps), gs);
}

template void adamw_step<float>(float*, const float*, float*, float*, int64_t, double, double, double, double, double,
                                int64_t, double);
template void adamw_step<double>(double*, const double*, double*, double*, int64_t, double, double, double, double,
                                 double, int64_t, double);

}  // namespace tv::cpu
