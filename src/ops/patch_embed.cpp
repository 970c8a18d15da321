#include "core/ops.h"
#include "core/profile.h"
#include "ops/arg_checks.h"
#include "ops/dispatch.h"

namespace tv::ops {

// img [B, C, H, W], w [Co, C, P, P], b [Co]; y [B, (H/P)*(W/P), Co] (a ragged edge is dropped, as a
// stride-P convolution drops it).
static PatchShape check_patch_embed(const char* op, const Tensor& img, const Tensor& w, const Tensor* b,
                                         const Tensor& y) {
  if (img.ndim() != 4) fail(op, ": img should be [B, C, H, W], got ", img.describe());
  check_contiguous(img, op, "img");
  if (w.ndim() != 4 || w.size(2) != w.size(3) || w.size(2) < 1)
    fail(op, ": w should be [Co, C, P, P], got ", w.describe());
  PatchShape s{img.size(0), img.size(1), img.size(2), img.size(3), w.size(0), w.size(2)};
  check_arg(w, op, "w", {s.Co, s.C, s.P, s.P}, img.dtype());
  if (b && b->defined()) check_arg(*b, op, "b", {s.Co}, img.dtype());
  check_arg(y, op, "y", {s.B, (s.H / s.P) * (s.W / s.P), s.Co}, img.dtype());
  return s;
}

void patch_embed_fwd(Tensor& y, const Tensor& img, const Tensor& w, const Tensor* b) {
  TV_PROFILE("patch_embed_fwd");
  const char* op = "patch_embed_fwd";
  PatchShape s = check_patch_embed(op, img, w, b, y);
  const Device dev = common_device(op, &y, &img, &w, b);
  TV_DISPATCH(dev, "patch_embed", img.dtype(), op,
                    TV_KERNEL(KT, patch_embed_fwd)(y.data<T>(), img.data<T>(), w.data<T>(), ptr_or_null<T>(b), s));
}

void patch_embed_bwd(Tensor* dimg, Tensor* dw, Tensor* db, const Tensor& dy, const Tensor& img, const Tensor& w) {
  TV_PROFILE("patch_embed_bwd");
  const char* op = "patch_embed_bwd";
  PatchShape s = check_patch_embed(op, img, w, db, dy);
  if (dimg) check_like(*dimg, img, op, "dimg");
  if (dw) check_like(*dw, w, op, "dw");
  const Device dev = common_device(op, &dy, &img, &w, dimg, dw, db);
  TV_DISPATCH(dev, "patch_embed", img.dtype(), op,
                    TV_KERNEL(KT, patch_embed_bwd)(ptr_or_null<T>(dimg), ptr_or_null<T>(dw), ptr_or_null<T>(db), dy.data<T>(),
                                            img.data<T>(), w.data<T>(), s));
}

}  // namespace tv::ops
