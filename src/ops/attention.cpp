#include <vector>

#include "core/ops.h"
#include "core/profile.h"
#include "ops/arg_checks.h"
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

namespace tv::ops {

// The caches' addresses for the kernel, in a per-thread buffer (which = 0: keys, 1: values) that only grows.
template <typename T>
static const std::vector<const T*>& cache_pointers(const std::vector<const Tensor*>& caches, int which) {
  thread_local std::vector<const T*> ptrs[2];
  std::vector<const T*>& p = ptrs[which];
  p.resize(caches.size());
  for (size_t i = 0; i < caches.size(); ++i) p[i] = caches[i]->data<T>();
  return p;
}

void attention_decode_fwd(Tensor& out, const Tensor& q, const std::vector<const Tensor*>& k,
                          const std::vector<const Tensor*>& v, const std::vector<int64_t>& kv_len, double scale,
                          int64_t chunk_size) {
  TV_PROFILE("attention_decode_fwd");
  const char* op = "attention_decode_fwd";
  TV_CHECK(q.ndim() == 3, op, ": q should be [n, H, Dh], got ", q.describe());
  const int64_t n = q.size(0), H = q.size(1), Dh = q.size(2);
  TV_CHECK(int64_t(k.size()) == n && int64_t(v.size()) == n && int64_t(kv_len.size()) == n, op, ": ", n,
           " query rows need as many caches and lengths, got ", k.size(), " k, ", v.size(), " v and ", kv_len.size(),
           " lengths");
  check_like(out, q, op, "out");
  check_contiguous(q, op, "q");
  TV_CHECK(chunk_size >= 0, op, ": chunk_size must be >= 0 (0: no chunking), got ", chunk_size);
  const Device dev = common_device(op, &out, &q);
  int64_t Hkv = 0;
  for (int64_t i = 0; i < n; ++i) {
    const Tensor* ki = k[size_t(i)];
    const Tensor* vi = v[size_t(i)];
    TV_CHECK(ki && vi && ki->defined() && vi->defined(), op, ": row ", i, " has no cache");
    TV_CHECK(ki->ndim() == 4 && ki->size(0) == 1 && ki->size(3) == Dh, op, ": the cache of row ", i,
             " should be [1, C, Hkv, ", Dh, "], got ", ki->describe());
    if (i == 0) Hkv = ki->size(2);
    TV_CHECK(ki->size(2) == Hkv && Hkv > 0 && H % Hkv == 0, op, ": row ", i, "'s cache has ", ki->size(2),
             " kv heads; every row needs the same number, a divisor of H = ", H);
    check_shape(*vi, ki->shape(), op, "v");
    check_same_dtype(q, *ki, op);
    check_same_dtype(q, *vi, op);
    check_contiguous(*ki, op, "k");
    check_contiguous(*vi, op, "v");
    same_device(op, dev, ki->device());
    same_device(op, dev, vi->device());
    TV_CHECK(kv_len[size_t(i)] >= 1 && kv_len[size_t(i)] <= ki->size(1), op, ": row ", i, "'s kv_len ",
             kv_len[size_t(i)], " should be in [1, ", ki->size(1), "] (its own key is in the cache)");
  }
  if (n == 0) return;
  TV_DISPATCH(dev, "attention_decode", q.dtype(), op,
              const std::vector<const T*>& kp = cache_pointers<T>(k, 0);
              const std::vector<const T*>& vp = cache_pointers<T>(v, 1);
              TV_KERNEL(KT, attention_decode_fwd)(out.data<T>(), q.data<T>(), kp.data(), vp.data(), kv_len.data(), n,
                                                  H, Hkv, Dh, scale, chunk_size));
}

}  // namespace tv::ops
