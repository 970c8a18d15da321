#include "core/ops.h"
#include "core/profile.h"
#include "ops/dispatch.h"

namespace tv::ops {

// Checks q [B,Sq,H,Dh], k and v [B,Sk,Hkv,Dh], out [B,Sq,H,Dh], lse [B,H,Sq] (when given) and the params;
// returns the shape for the kernel.
static AttentionShape check_attention(const char* op, const Tensor& q, const Tensor& k, const Tensor& v,
                                           const Tensor& out, const Tensor* lse, const AttentionParams& p) {
  TV_CHECK(q.ndim() == 4 && k.ndim() == 4, op, ": q [B,Sq,H,Dh] and k [B,Sk,Hkv,Dh] expected, got ", q.describe(),
           ", ", k.describe());
  AttentionShape s{q.size(0), q.size(1), k.size(1), q.size(2), k.size(2), q.size(3)};
  TV_CHECK(s.Hkv > 0 && s.H % s.Hkv == 0, op, ": query heads (", s.H, ") must be a multiple of kv heads (", s.Hkv,
           ")");
  check_shape(k, {s.B, s.Sk, s.Hkv, s.Dh}, op, "k");
  check_shape(v, {s.B, s.Sk, s.Hkv, s.Dh}, op, "v");
  check_shape(out, {s.B, s.Sq, s.H, s.Dh}, op, "out");
  for (const Tensor* t : {&k, &v, &out}) check_same_dtype(q, *t, op);
  for (const Tensor* t : {&q, &k, &v, &out}) check_contiguous(*t, op, "argument");
  if (lse && lse->defined()) {
    check_shape(*lse, {s.B, s.H, s.Sq}, op, "lse");
    check_same_dtype(q, *lse, op);
    check_contiguous(*lse, op, "lse");
  }
  TV_CHECK(p.q_offset >= 0, op, ": q_offset must be >= 0, got ", p.q_offset);
  TV_CHECK(p.chunk_size >= 0, op, ": chunk_size must be >= 0 (0: no chunking), got ", p.chunk_size);
  return s;
}

void attention_fwd(Tensor& out, Tensor* lse, const Tensor& q, const Tensor& k, const Tensor& v,
                   const AttentionParams& p) {
  TV_PROFILE("attention_fwd");
  const char* op = "attention_fwd";
  AttentionShape s = check_attention(op, q, k, v, out, lse, p);
  const Device dev = common_device(op, &out, lse, &q, &k, &v);
  TV_DISPATCH(dev, "attention", q.dtype(), op,
                    TV_KERNEL(KT, attention_fwd)(out.data<T>(), ptr_or_null<T>(lse), q.data<T>(), k.data<T>(), v.data<T>(),
                                          s, p.scale, p.q_offset, p.chunk_size, p.causal));
}

// dq, dk, dv: an undefined tensor means "not needed", like a null gradient elsewhere.
void attention_bwd(Tensor& dq, Tensor& dk, Tensor& dv, double* dscale, const Tensor& dout, const Tensor& q,
                   const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse, const AttentionParams& p,
                   GradMode mode) {
  TV_PROFILE("attention_bwd");
  const char* op = "attention_bwd";
  AttentionShape s = check_attention(op, q, k, v, out, &lse, p);
  TV_CHECK(lse.defined(), op, ": lse from the forward is required");
  check_shape(dout, out.shape(), op, "dout");
  check_same_dtype(q, dout, op);
  check_contiguous(dout, op, "dout");
  const Tensor* grads[] = {&dq, &dk, &dv};
  const Tensor* like[] = {&q, &k, &v};
  const char* names[] = {"dq", "dk", "dv"};
  for (int i = 0; i < 3; ++i) {
    if (!grads[i]->defined()) continue;
    check_shape(*grads[i], like[i]->shape(), op, names[i]);
    check_same_dtype(q, *grads[i], op);
    check_contiguous(*grads[i], op, names[i]);
  }
  const Device dev = common_device(op, &dq, &dk, &dv, &dout, &q, &k, &v, &out, &lse);
  TV_DISPATCH(dev, "attention", q.dtype(), op,
                    TV_KERNEL(KT, attention_bwd)(ptr_or_null<T>(&dq), ptr_or_null<T>(&dk), ptr_or_null<T>(&dv), dscale,
                                          dout.data<T>(), q.data<T>(), k.data<T>(), v.data<T>(), out.data<T>(),
                                          lse.data<T>(), s, p.scale, p.q_offset, p.chunk_size, p.causal,
                                          mode == GradMode::Overwrite));
}

}  // namespace tv::ops
