#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/grain.h"

namespace tv::cpu {

// PyTorch's single-tensor AdamW, operation by operation (scalars rounded to T where PyTorch rounds them):
//   p *= 1 - lr wd;  m.lerp_(g, 1 - b1);  v = v b2 + (1 - b2) g g;
//   p += -lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
namespace {
// The scalars of one update, rounded to T where PyTorch rounds them.
template <typename T>
struct AdamWConsts {
  T decay, w1, b2, w2, neg_step_size, bc2_sqrt, eps, gs;
  bool scaled;
  AdamWConsts(double lr, double beta1, double beta2, double eps_, double weight_decay, int64_t step,
              double grad_scale) {
    const double t = double(step);
    decay = T(1 - lr * weight_decay);
    w1 = T(1 - beta1), b2 = T(beta2), w2 = T(1 - beta2);
    neg_step_size = T(-(lr / (1 - std::pow(beta1, t))));
    bc2_sqrt = T(std::sqrt(1 - std::pow(beta2, t)));
    eps = T(eps_);
    gs = T(grad_scale);
    scaled = grad_scale != 1.0;
  }
};

// `low` picks lerp's form as PyTorch does (weight < 0.5: m + w (g - m), else g - (g - m)(1 - w)); a
// template flag keeps the loop free of branches.
// `scaled`: the gradient is first multiplied by gs (global-norm clipping folded in: the same product
// clipping would have stored, without a pass that writes it back).
template <typename T, bool low, bool scaled>
void adamw_range(T* param, const T* grad, T* m, T* v, int64_t i0, int64_t i1, const AdamWConsts<T>& c) {
  // Locals, not c's members: stores through the arrays could alias them, which keeps the loop scalar.
  const T gs = c.gs, w1 = c.w1, b2 = c.b2, w2 = c.w2, bc2_sqrt = c.bc2_sqrt, eps = c.eps, decay = c.decay,
          neg_step_size = c.neg_step_size;
#pragma omp simd
  for (int64_t i = i0; i < i1; ++i) {
    const T g = scaled ? grad[i] * gs : grad[i];
    const T mi = low ? m[i] + w1 * (g - m[i]) : g - (g - m[i]) * (T(1) - w1);
    const T vi = v[i] * b2 + w2 * g * g;
    const T denom = std::sqrt(vi) / bc2_sqrt + eps;
    param[i] = param[i] * decay + neg_step_size * mi / denom;
    m[i] = mi;
    v[i] = vi;
  }
}

// Elements [i0, i1) of one tensor, on the calling thread.
template <typename T>
void adamw_elements(const AdamWSlice<T>& s, int64_t i0, int64_t i1, const AdamWConsts<T>& c) {
  if (c.w1 < T(0.5) && c.scaled)
    adamw_range<T, true, true>(s.param, s.grad, s.m, s.v, i0, i1, c);
  else if (c.w1 < T(0.5))
    adamw_range<T, true, false>(s.param, s.grad, s.m, s.v, i0, i1, c);
  else if (c.scaled)
    adamw_range<T, false, true>(s.param, s.grad, s.m, s.v, i0, i1, c);
  else
    adamw_range<T, false, false>(s.param, s.grad, s.m, s.v, i0, i1, c);
}

constexpr int64_t kAdamWPiece = 1 << 14;  // elements per work item of the multi-tensor update
}  // namespace

template <typename T>
void adamw_step(T* param, const T* grad, T* m, T* v, int64_t n, double lr, double beta1, double beta2, double eps,
                double weight_decay, int64_t step, double grad_scale) {
  const AdamWSlice<T> s{param, grad, m, v, n, step};
  adamw_multi(&s, 1, lr, beta1, beta2, eps, weight_decay, grad_scale);
}

template <typename T>
void adamw_multi(const AdamWSlice<T>* ts, int64_t count, double lr, double beta1, double beta2, double eps,
                 double weight_decay, double grad_scale) {
  // Every tensor cut into pieces; all pieces of all tensors shared out in one parallel region.
  std::vector<AdamWConsts<T>> consts;
  std::vector<int64_t> first_piece(size_t(count) + 1, 0);
  int64_t total = 0;
  for (int64_t t = 0; t < count; ++t) {
    consts.emplace_back(lr, beta1, beta2, eps, weight_decay, ts[t].step, grad_scale);
    first_piece[size_t(t) + 1] = first_piece[size_t(t)] + (ts[t].n + kAdamWPiece - 1) / kAdamWPiece;
    total += ts[t].n;
  }
  const int64_t pieces = first_piece.back();
#pragma omp parallel for schedule(static) if (total >= kParallelGrain)
  for (int64_t k = 0; k < pieces; ++k) {
    const int64_t t = int64_t(std::upper_bound(first_piece.begin(), first_piece.end(), k) - first_piece.begin()) - 1;
    const int64_t i0 = (k - first_piece[size_t(t)]) * kAdamWPiece, i1 = std::min(ts[t].n, i0 + kAdamWPiece);
    adamw_elements(ts[t], i0, i1, consts[size_t(t)]);
  }
}

template void adamw_step<float>(float*, const float*, float*, float*, int64_t, double, double, double, double, double,
                                int64_t, double);
template void adamw_step<double>(double*, const double*, double*, double*, int64_t, double, double, double, double,
                                 double, int64_t, double);
template void adamw_multi<float>(const AdamWSlice<float>*, int64_t, double, double, double, double, double, double);
template void adamw_multi<double>(const AdamWSlice<double>*, int64_t, double, double, double, double, double, double);

}  // namespace tv::cpu
