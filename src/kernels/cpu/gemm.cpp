#include <cblas.h>

#include <type_traits>

#include "core/precision.h"
#include "kernels/cpu/cpu_ops.h"

namespace tv::cpu {

void gemm_f32(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
              const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(M), int(N), int(K),
              alpha, A, int(lda), B, int(ldb), beta, C, int(ldc));
}

template <>
void gemm<float>(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (matmul_precision() == MatmulPrecision::BF16) return gemm_bf16(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  gemm_f32(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

template <>
void gemm<double>(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t lda,
                  const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(M), int(N), int(K),
              alpha, A, int(lda), B, int(ldb), beta, C, int(ldc));
}

template <typename T>
void gemm_grouped(bool ta, bool tb, T alpha, T beta, const GemmGroup<T>* problems, int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    if (matmul_precision() == MatmulPrecision::BF16) return gemm_bf16_grouped(ta, tb, alpha, beta, problems, n);
  }
  // BLAS parallelises each GEMM on its own; one after the other gives the same bits as separate calls.
  for (int64_t p = 0; p < n; ++p) {
    const GemmGroup<T>& g = problems[p];
    gemm<T>(ta, tb, g.M, g.N, g.K, alpha, g.A, g.lda, g.B, g.ldb, beta, g.C, g.ldc);
  }
}

template void gemm_grouped<float>(bool, bool, float, float, const GemmGroup<float>*, int64_t);
template void gemm_grouped<double>(bool, bool, double, double, const GemmGroup<double>*, int64_t);

}  // namespace tv::cpu
