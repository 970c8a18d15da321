// MoE router: softmax over the experts, top-k by probability, renormalised weights. E is small (8 in the reference), so each row is plain scalar code; rows run
// in parallel. Top-k ties go to the lower expert index (strict comparison while scanning upwards).
#include <cmath>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/grain.h"

namespace tv::cpu {

template <typename T>
void moe_route_fwd(T* probs, int32_t* idx, T* w, const T* logits, int64_t N, int64_t E, int k) {
#pragma omp parallel for schedule(static) if (N * E * k > kParallelGrain)
  for (int64_t n = 0; n < N; ++n) {
    const T* x = logits + n * E;
    T* p = probs + n * E;
    T mx = x[0];
    for (int64_t e = 1; e < E; ++e) mx = x[e] > mx ? x[e] : mx;
    T sum = 0;
    for (int64_t e = 0; e < E; ++e) sum += p[e] = std::exp(x[e] - mx);
    for (int64_t e = 0; e < E; ++e) p[e] /= sum;
    int32_t* id = idx + n * k;
    T z = 0;
    for (int s = 0; s < k; ++s) {
      int64_t best = -1;
      for (int64_t e = 0; e < E; ++e) {
        bool taken = false;
        for (int t = 0; t < s; ++t) taken |= id[t] == e;
        if (!taken && (best < 0 || p[e] > p[best])) best = e;
      }
      id[s] = int32_t(best);
      z += p[best];
    }
    for (int s = 0; s < k; ++s) w[n * k + s] = p[id[s]] / z;
  }
}

template <typename T>
void moe_route_bwd(T* dlogits, const T* dw, const T* dprobs, const T* probs, const int32_t* idx, int64_t N,
                   int64_t E, int k) {
#pragma omp parallel if (N * E > kParallelGrain)
  {
    std::vector<T> dp(E);
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      const T* p = probs + n * E;
      const int32_t* id = idx + n * k;
      for (int64_t e = 0; e < E; ++e) dp[e] = dprobs ? dprobs[n * E + e] : T(0);
      if (dw) {
        // w_s = p_s / z with z = sum_t p_t:  d p_s = (dw_s - sum_t dw_t w_t) / z.
        T z = 0;
        for (int s = 0; s < k; ++s) z += p[id[s]];
        T c = 0;
        for (int s = 0; s < k; ++s) c += dw[n * k + s] * (p[id[s]] / z);
        for (int s = 0; s < k; ++s) dp[id[s]] += (dw[n * k + s] - c) / z;
      }
      // Softmax: dlogit_e = p_e (dp_e - sum_f p_f dp_f).
      T pd = 0;
      for (int64_t e = 0; e < E; ++e) pd += p[e] * dp[e];
      for (int64_t e = 0; e < E; ++e) dlogits[n * E + e] += p[e] * (dp[e] - pd);
    }
  }
}

template void moe_route_fwd<float>(float*, int32_t*, float*, const float*, int64_t, int64_t, int);
template void moe_route_fwd<double>(double*, int32_t*, double*, const double*, int64_t, int64_t, int);
template void moe_route_bwd<float>(float*, const float*, const float*, const float*, const int32_t*, int64_t, int64_t,
                                   int);
template void moe_route_bwd<double>(double*, const double*, const double*, const double*, const int32_t*, int64_t,
                                    int64_t, int);

}  // namespace tv::cpu
