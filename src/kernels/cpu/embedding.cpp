#include <algorithm>

#include "kernels/cpu/cpu_ops.h"

namespace tv::cpu {

template <typename T>
void embedding_fwd(T* y, const int32_t* ids, const T* table, int64_t N, int64_t V, int64_t D) {
  gather_rows<T>(y, table, ids, N, D);
}

// Repeated ids add up in token order (deterministic; see scatter_add_rows).
template <typename T>
void embedding_bwd(T* dtable, const T* dy, const int32_t* ids, int64_t N, int64_t V, int64_t D) {
  scatter_add_rows<T>(dtable, dy, ids, nullptr, N, V, D);
}

#define TV_INSTANTIATE(T)                                                                  \
  template void embedding_fwd<T>(T*, const int32_t*, const T*, int64_t, int64_t, int64_t); \
  template void embedding_bwd<T>(T*, const T*, const int32_t*, int64_t, int64_t, int64_t);
TV_INSTANTIATE(float)
TV_INSTANTIATE(double)
#undef TV_INSTANTIATE

}  // namespace tv::cpu
