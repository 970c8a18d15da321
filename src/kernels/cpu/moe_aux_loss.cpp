// MoE load-balancing loss E * sum_e f_e P_e. Accumulated serially in double (N x E is small), so
// the value does not depend on the thread count.
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/grain.h"

namespace tv::cpu {
namespace {

// f_e = count_e / (N k), P_e = mean_n probs[n, e]; loss = E sum_e f_e P_e.
std::vector<double> pick_shares(const int32_t* idx, int64_t N, int64_t E, int k) {
  std::vector<double> f(E, 0.0);
  for (int64_t i = 0; i < N * k; ++i) f[idx[i]] += 1.0;
  for (double& x : f) x /= double(N * k);
  return f;
}

}  // namespace

template <typename T>
double moe_aux_loss_fwd(const T* probs, const int32_t* idx, int64_t N, int64_t E, int k) {
  if (N == 0 || k == 0) return 0.0;
  std::vector<double> f = pick_shares(idx, N, E, k), P(E, 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t e = 0; e < E; ++e) P[e] += double(probs[n * E + e]);
  double loss = 0;
  for (int64_t e = 0; e < E; ++e) loss += f[e] * (P[e] / double(N));
  return double(E) * loss;
}

template <typename T>
void moe_aux_loss_bwd(T* dprobs, double dloss, const int32_t* idx, int64_t N, int64_t E, int k) {
  if (N == 0 || k == 0) return;
  std::vector<double> f = pick_shares(idx, N, E, k);
  std::vector<T> g(E);
  for (int64_t e = 0; e < E; ++e) g[e] = T(dloss * double(E) * f[e] / double(N));
#pragma omp parallel for schedule(static) if (N * E > kParallelGrain)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t e = 0; e < E; ++e) dprobs[n * E + e] += g[e];
}

template double moe_aux_loss_fwd<float>(const float*, const int32_t*, int64_t, int64_t, int);
template double moe_aux_loss_fwd<double>(const double*, const int32_t*, int64_t, int64_t, int);
template void moe_aux_loss_bwd<float>(float*, double, const int32_t*, int64_t, int64_t, int);
template void moe_aux_loss_bwd<double>(double*, double, const int32_t*, int64_t, int64_t, int);

}  // namespace tv::cpu
