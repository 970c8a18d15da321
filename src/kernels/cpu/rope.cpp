#include <cmath>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/grain.h"

namespace tv::cpu {

namespace {

// y (+)= R x for every head of every (b, s) row; cs/sn [S, Dh/2] hold cos and (signed) sin.
template <typename T, bool accumulate>
void rotate_rows(T* y, const T* x, const T* cs, const T* sn, int64_t B, int64_t S, int64_t H, int64_t Dh) {
  const int64_t half = Dh / 2;
#pragma omp parallel for if (B * S * H * Dh >= kParallelGrain) schedule(static)
  for (int64_t bs = 0; bs < B * S; ++bs) {
    const T* c = cs + (bs % S) * half;
    const T* sg = sn + (bs % S) * half;
    for (int64_t h = 0; h < H; ++h) {
      const T* xr = x + (bs * H + h) * Dh;
      T* yr = y + (bs * H + h) * Dh;
      for (int64_t j = 0; j < half; ++j) {
        const T x0 = xr[2 * j], x1 = xr[2 * j + 1];
        const T y0 = x0 * c[j] - x1 * sg[j], y1 = x0 * sg[j] + x1 * c[j];
        yr[2 * j] = accumulate ? yr[2 * j] + y0 : y0;
        yr[2 * j + 1] = accumulate ? yr[2 * j + 1] + y1 : y1;
      }
    }
  }
}

}  // namespace

// The original computes theta_j = base ** (-(2j)/Dh) and angle = m * theta_j as float32 tensors; T = float
// does the same arithmetic in float (so long sequences rotate by the same rounded angles), T = double in double.
template <typename T>
void rope(T* y, const T* x, int64_t B, int64_t S, int64_t H, int64_t Dh, int64_t pos_offset, double theta, int sign,
          bool accumulate) {
  const int64_t half = Dh / 2;
  const size_t table = static_cast<size_t>(S * half);
  std::vector<T> freq(static_cast<size_t>(half)), cs(table), sn(table);
  for (int64_t j = 0; j < half; ++j) freq[j] = std::pow(T(theta), T(-2 * j) / T(Dh));
#pragma omp parallel for if (S * half >= kParallelGrain) schedule(static)
  for (int64_t s = 0; s < S; ++s) {
    const T m = T(pos_offset + s);
    for (int64_t j = 0; j < half; ++j) {
      const T a = m * freq[j];
      cs[s * half + j] = std::cos(a);
      sn[s * half + j] = sign < 0 ? -std::sin(a) : std::sin(a);
    }
  }
  if (accumulate)
    rotate_rows<T, true>(y, x, cs.data(), sn.data(), B, S, H, Dh);
  else
    rotate_rows<T, false>(y, x, cs.data(), sn.data(), B, S, H, Dh);
}

template void rope<float>(float*, const float*, int64_t, int64_t, int64_t, int64_t, int64_t, double, int, bool);
template void rope<double>(double*, const double*, int64_t, int64_t, int64_t, int64_t, int64_t, double, int, bool);

}  // namespace tv::cpu
