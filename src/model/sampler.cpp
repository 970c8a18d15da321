#include "model/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_set>

namespace tv {

int32_t sample_next(std::vector<float> logits, const std::vector<int32_t>& seen, const SamplerOptions& o, Rng& rng) {
  const int64_t V = int64_t(logits.size());
  if (o.repetition_penalty != 1.0) {
    std::unordered_set<int32_t> uniq(seen.begin(), seen.end());
    for (int32_t t : uniq) {
      if (t < 0 || t >= V) continue;
      float& l = logits[t];
      l = l > 0 ? float(l / o.repetition_penalty) : float(l * o.repetition_penalty);
    }
  }
  if (o.temperature <= 0.0) return int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());

  std::vector<int32_t> idx(V);
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  int64_t keep = V;
  if (o.top_k > 0) keep = std::min<int64_t>(keep, o.top_k);
  std::vector<double> p(keep);
  double mx = logits[idx[0]] / o.temperature, sum = 0;
  for (int64_t i = 0; i < keep; ++i) sum += p[i] = std::exp(logits[idx[i]] / o.temperature - mx);
  for (double& x : p) x /= sum;
  if (o.top_p < 1.0) {
    // Smallest prefix whose mass reaches top_p (always at least one token).
    double cum = 0;
    int64_t n = 0;
    while (n < keep) {
      cum += p[n++];
      if (cum >= o.top_p) break;
    }
    keep = n;
    p.resize(keep);
    double s2 = std::accumulate(p.begin(), p.end(), 0.0);
    for (double& x : p) x /= s2;
  }
  double u = rng.uniform(), acc = 0;
  for (int64_t i = 0; i < keep; ++i) {
    acc += p[i];
    if (u < acc) return idx[i];
  }
  return idx[keep - 1];
}

}  // namespace tv
