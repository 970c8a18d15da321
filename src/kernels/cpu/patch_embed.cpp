// Patch embedding = convolution with stride = kernel = P: the patches do not overlap, so im2col is a
// permutation of the image into rows [B * nPatches, C*P*P] and the convolution is one linear layer.
#include <algorithm>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/grain.h"

namespace tv::cpu {

namespace {

// Row (b, ph, pw) of cols holds the patch in (c, i, j) order, the flattening of w [Co, C, P, P].
// Calls seg(img_offset, col_offset) for every run of P pixels that a patch row copies; parallel over
// patch rows, and no two calls touch the same pixels or columns.
template <typename Seg>
void for_each_patch_segment(const PatchShape& s, Seg seg) {
  const int64_t nh = s.H / s.P, nw = s.W / s.P, K = s.C * s.P * s.P, P = s.P;
#pragma omp parallel for if (s.B * s.C * s.H * s.W >= kParallelGrain) schedule(static)
  for (int64_t bph = 0; bph < s.B * nh; ++bph) {
    const int64_t b = bph / nh, ph = bph % nh;
    for (int64_t pw = 0; pw < nw; ++pw)
      for (int64_t c = 0; c < s.C; ++c)
        for (int64_t i = 0; i < P; ++i)
          seg(((b * s.C + c) * s.H + ph * P + i) * s.W + pw * P, ((b * nh + ph) * nw + pw) * K + (c * P + i) * P);
  }
}

template <typename T>
void im2col(T* cols, const T* img, const PatchShape& s) {
  for_each_patch_segment(s, [&](int64_t pix, int64_t col) { std::copy(img + pix, img + pix + s.P, cols + col); });
}

template <typename T>
void col2im_add(T* img, const T* cols, const PatchShape& s) {
  for_each_patch_segment(s, [&](int64_t pix, int64_t col) {
    for (int64_t j = 0; j < s.P; ++j) img[pix + j] += cols[col + j];
  });
}

}  // namespace

template <typename T>
void patch_embed_fwd(T* y, const T* img, const T* w, const T* b, const PatchShape& s) {
  const int64_t M = s.B * (s.H / s.P) * (s.W / s.P), K = s.C * s.P * s.P;
  std::vector<T> cols(size_t(M * K));
  im2col(cols.data(), img, s);
  linear_fwd<T>(y, cols.data(), w, b, M, K, s.Co);
}

template <typename T>
void patch_embed_bwd(T* dimg, T* dw, T* db, const T* dy, const T* img, const T* w, const PatchShape& s) {
  const int64_t M = s.B * (s.H / s.P) * (s.W / s.P), K = s.C * s.P * s.P;
  std::vector<T> cols, dcols;
  if (dw) {
    cols.resize(size_t(M * K));
    im2col(cols.data(), img, s);
  }
  if (dimg) dcols.assign(size_t(M * K), T(0));
  linear_bwd<T>(dimg ? dcols.data() : nullptr, dw, db, dy, dw ? cols.data() : nullptr, w, M, K, s.Co);
  if (dimg) col2im_add(dimg, dcols.data(), s);
}

#define TV_INSTANTIATE(T)                                                                \
  template void patch_embed_fwd<T>(T*, const T*, const T*, const T*, const PatchShape&); \
  template void patch_embed_bwd<T>(T*, T*, T*, const T*, const T*, const T*, const PatchShape&);
TV_INSTANTIATE(float)
TV_INSTANTIATE(double)
#undef TV_INSTANTIATE

}  // namespace tv::cpu
