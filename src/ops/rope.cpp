#include "core/ops.h"
#include "core/profile.h"
#include "ops/arg_checks.h"
#include "ops/dispatch.h"

namespace tv::ops {

static void check_rope(const char* op, const Tensor& x, const Tensor& y, int64_t pos_offset, double theta) {
  if (x.ndim() != 4 || x.size(3) % 2 != 0) fail(op, ": x should be [B, S, H, Dh] with Dh even, got ", x.describe());
  check_contiguous(x, op, "x");
  check_like(y, x, op, "y");
  if (pos_offset < 0) fail(op, ": pos_offset should be >= 0, got ", pos_offset);
  if (!(theta > 0)) fail(op, ": theta should be > 0, got ", theta);
}

void rope_fwd(Tensor& y, const Tensor& x, int64_t pos_offset, double theta) {
  TV_PROFILE("rope_fwd");
  const char* op = "rope_fwd";
  check_rope(op, x, y, pos_offset, theta);
  const Device dev = common_device(op, &y, &x);
  TV_DISPATCH(dev, "rope", 
      x.dtype(), op,
      TV_KERNEL(KT, rope)(y.data<T>(), x.data<T>(), x.size(0), x.size(1), x.size(2), x.size(3), pos_offset, theta, +1, false));
}

void rope_bwd(Tensor& dx, const Tensor& dy, int64_t pos_offset, double theta, GradMode mode) {
  TV_PROFILE("rope_bwd");
  const char* op = "rope_bwd";
  check_rope(op, dy, dx, pos_offset, theta);
  const Device dev = common_device(op, &dx, &dy);
  TV_DISPATCH(dev, "rope", dy.dtype(), op,
                    TV_KERNEL(KT, rope)(dx.data<T>(), dy.data<T>(), dy.size(0), dy.size(1), dy.size(2), dy.size(3), pos_offset,
                                 theta, -1, mode == GradMode::Accumulate));
}

}  // namespace tv::ops
