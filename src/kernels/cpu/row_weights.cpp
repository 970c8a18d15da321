#include "kernels/cpu/cpu_ops.h"

namespace tv::cpu {

template <typename T>
void scale_rows(T* y, const T* x, const T* w, int64_t n, int64_t D) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < D; ++j) y[i * D + j] = w[i] * x[i * D + j];
}

template <typename T>
void scale_rows_bwd(T* dx, T* dw, const T* dy, const T* x, const T* w, int64_t n, int64_t D) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    T acc = 0;
    for (int64_t j = 0; j < D; ++j) {
      if (dx) dx[i * D + j] += w[i] * dy[i * D + j];
      acc += dy[i * D + j] * x[i * D + j];
    }
    if (dw) dw[i] += acc;
  }
}

template <typename T>
void row_dot(T* out, const T* a, const T* b, int64_t n, int64_t D) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    T acc = 0;
    for (int64_t j = 0; j < D; ++j) acc += a[i * D + j] * b[i * D + j];
    out[i] = acc;
  }
}

template <typename T>
void row_dot_bwd(T* da, T* db, const T* dout, const T* a, const T* b, int64_t n, int64_t D) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < D; ++j) {
      if (da) da[i * D + j] += dout[i] * b[i * D + j];
      if (db) db[i * D + j] += dout[i] * a[i * D + j];
    }
}

#define TV_INSTANTIATE(T)                                                                  \
  template void scale_rows<T>(T*, const T*, const T*, int64_t, int64_t);                   \
  template void scale_rows_bwd<T>(T*, T*, const T*, const T*, const T*, int64_t, int64_t); \
  template void row_dot<T>(T*, const T*, const T*, int64_t, int64_t);                      \
  template void row_dot_bwd<T>(T*, T*, const T*, const T*, const T*, int64_t, int64_t);
TV_INSTANTIATE(float)
TV_INSTANTIATE(double)
#undef TV_INSTANTIATE

}  // namespace tv::cpu
