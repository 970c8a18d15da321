// Inference linears with bf16 or q8 weights and fp32 activations (`--weights bf16|q8`), y = x @ w^T (+ b).
// Up to kStreamRows rows of x (a decode step, or a batched one): one pass over the weights, each weight
// row turned to fp32 in registers and multiplied into every row of x (weight_rows.inc), OpenMP over
// blocks of output rows. More rows (a prefill): bound by compute, not by the weights' bytes, so panels
// of weight rows are turned to fp32 (the same values) and multiplied with the fp32 GEMM.
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/grain.h"
#include "kernels/cpu/weight_formats.h"

namespace tv::cpu {
namespace {

constexpr int64_t kStreamRows = 16;   // the batched decode step's most rows
constexpr int64_t kTaskRows = 16;     // output rows per task of the streaming path
constexpr int64_t kPanelRows = 256;   // weight rows turned to fp32 at a time on the large-N path

std::atomic<int> g_isa{-1};  // -1: the best the CPU has

WeightKernelIsa best_isa() {
  static const bool avx512 =
      __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  return avx512 ? WeightKernelIsa::Avx512 : WeightKernelIsa::Avx2;
}

WeightRowsFn pick(const WeightFormatRows& f) {
  switch (weight_kernel_isa()) {
    case WeightKernelIsa::Scalar: return f.scalar;
    case WeightKernelIsa::Avx2: return f.avx2;
    case WeightKernelIsa::Avx512: return f.avx512;
  }
  return f.avx2;
}

// One matrix-times-rows problem of a call: rows x [N, in] (N <= kStreamRows on the streaming path).
struct Problem {
  float* y;
  const float* x;
  int64_t N;
  const void* w;
};

void add_bias(float* y, const float* b, int64_t N, int64_t out) {
  if (!b) return;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < out; ++o) y[n * out + o] += b[o];
}

// Every problem with N <= kStreamRows in one parallel region, kTaskRows output rows per task.
void stream(const WeightFormatRows& f, const std::vector<Problem>& probs, int64_t in, int64_t out) {
  if (probs.empty()) return;
  const WeightRowsFn fn = pick(f);
  const int64_t per = (out + kTaskRows - 1) / kTaskRows, tasks = per * int64_t(probs.size());
  int64_t work = 0;
  for (const Problem& p : probs) work += p.N * in * out;
#pragma omp parallel for schedule(dynamic, 1) if (work > kParallelGrain)
  for (int64_t t = 0; t < tasks; ++t) {
    const Problem& p = probs[size_t(t / per)];
    const int64_t o0 = (t % per) * kTaskRows;
    fn(p.y, out, p.x, p.N, in, p.w, o0, std::min(out, o0 + kTaskRows));
  }
}

// y [N, out] = x @ w^T with w turned to fp32 a panel of rows at a time.
void large(const WeightFormatRows& f, const Problem& p, int64_t in, int64_t out) {
  const int64_t panel = std::min(out, kPanelRows);
  std::vector<float> buf(size_t(panel * in));
  for (int64_t o0 = 0; o0 < out; o0 += panel) {
    const int64_t oc = std::min(panel, out - o0);
#pragma omp parallel for schedule(static) if (oc * in > kParallelGrain)
    for (int64_t r = 0; r < oc; ++r) f.to_f32(buf.data() + r * in, p.w, in, o0 + r, o0 + r + 1);
    gemm<float>(false, true, p.N, oc, in, 1.0f, p.x, in, buf.data(), in, 0.0f, p.y + o0, out);
  }
}

void linear(const WeightFormatRows& f, float* y, const float* x, const void* w, const float* b, int64_t N,
            int64_t in, int64_t out) {
  if (N == 0 || out == 0) return;
  const Problem p{y, x, N, w};
  if (N <= kStreamRows)
    stream(f, {p}, in, out);
  else
    large(f, p, in, out);
  add_bias(y, b, N, out);
}

void grouped(const WeightFormatRows& f, float* y, const float* x, const void* const* w, const int64_t* offsets,
             int64_t groups, int64_t in, int64_t out) {
  std::vector<Problem> small;
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t r0 = offsets[g], n = offsets[g + 1] - r0;
    const Problem p{y + r0 * out, x + r0 * in, n, w[g]};
    if (n > kStreamRows)
      large(f, p, in, out);
    else if (n > 0)
      small.push_back(p);
  }
  stream(f, small, in, out);
}

}  // namespace

WeightKernelIsa weight_kernel_isa() {
  const int s = g_isa.load(std::memory_order_relaxed);
  const WeightKernelIsa best = best_isa();
  if (s < 0 || s > int(best)) return best;
  return WeightKernelIsa(s);
}

void set_weight_kernel_isa(WeightKernelIsa isa) { g_isa.store(int(isa), std::memory_order_relaxed); }

void linear_fwd_bf16w(float* y, const float* x, const uint16_t* w, const float* b, int64_t N, int64_t in,
                      int64_t out) {
  linear(bf16_weight_rows(), y, x, w, b, N, in, out);
}

void linear_fwd_q8w(float* y, const float* x, const BlockQ8* w, const float* b, int64_t N, int64_t in, int64_t out) {
  linear(q8_weight_rows(), y, x, w, b, N, in, out);
}

void linear_grouped_fwd_bf16w(float* y, const float* x, const uint16_t* const* w, const int64_t* offsets,
                              int64_t groups, int64_t in, int64_t out) {
  grouped(bf16_weight_rows(), y, x, reinterpret_cast<const void* const*>(w), offsets, groups, in, out);
}

void linear_grouped_fwd_q8w(float* y, const float* x, const BlockQ8* const* w, const int64_t* offsets,
                            int64_t groups, int64_t in, int64_t out) {
  grouped(q8_weight_rows(), y, x, reinterpret_cast<const void* const*>(w), offsets, groups, in, out);
}

}  // namespace tv::cpu
