// Threading: OpenMP for our kernels, OpenBLAS's own pool for GEMMs. Both use the same count.
#pragma once

namespace tv {

// Sets the worker count for OpenMP and BLAS; n <= 0 means all cores (or OMP_NUM_THREADS when set).
void set_num_threads(int n);
int num_threads();

}  // namespace tv
