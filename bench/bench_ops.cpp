// `tinyvlm bench ops`: throughput of the heavy CPU kernels, each beside a peak measured in the same run
// (BLAS sgemm GFLOP/s for the compute-bound ops, a plain parallel read of the same buffer for the
// memory-bound cross-entropy).
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bench/bench.h"
#include "core/ops.h"
#include "core/parallel.h"
#include "core/precision.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "kernels/cpu/cpu_ops.h"

namespace tv::bench {
namespace {

struct OpsOptions {
  int threads = 0;
  bool quick = false;
};

Tensor random_f32(const Shape& shape, Rng& rng, double amp = 1.0) {
  Tensor t = Tensor::empty(shape, DType::F32);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = float(rng.uniform(-amp, amp));
  return t;
}

// Median seconds of one call: one warm-up call, then `repeats` timings, each over enough calls to
// last about 20 ms so that short kernels are not lost in timer noise.
double time_op(const std::function<void()>& fn, int repeats) {
  using clock = std::chrono::steady_clock;
  auto t0 = clock::now();
  fn();
  double first = std::chrono::duration<double>(clock::now() - t0).count();
  int inner = std::max(1, int(std::ceil(0.02 / std::max(first, 1e-9))));
  std::vector<double> times;
  for (int r = 0; r < repeats; ++r) {
    auto a = clock::now();
    for (int i = 0; i < inner; ++i) fn();
    times.push_back(std::chrono::duration<double>(clock::now() - a).count() / inner);
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

void print_header() {
  std::printf("%-16s %-40s %10s %10s %10s\n", "kernel", "shape", "ms", "GFLOP/s", "% peak");
  std::printf("%s\n", std::string(90, '-').c_str());
}

void print_row(const std::string& kernel, const std::string& shape, double sec, double flops, double peak) {
  double gf = flops / sec * 1e-9;
  std::printf("%-16s %-40s %10.3f %10.1f %9.1f%%\n", kernel.c_str(), shape.c_str(), sec * 1e3, gf,
              peak > 0 ? 100.0 * gf / peak : 0.0);
}

// Visible (query, key) pairs of one batch element and head; the FLOP counts use only these.
double visible_pairs(int64_t S, int64_t chunk) {
  double n = 0;
  for (int64_t i = 0; i < S; ++i) n += double(i - (chunk > 0 ? (i / chunk) * chunk : 0) + 1);
  return n;
}

void run_ops_bench(const OpsOptions& opt) {
  set_num_threads(opt.threads);
  const int reps = opt.quick ? 3 : 7;
  Rng rng(42);
  std::printf("tinyvlm bench ops: %d threads, median of %d timings after a warm-up%s\n", num_threads(), reps,
              opt.quick ? " (quick)" : "");
  double load[1];
  if (getloadavg(load, 1) == 1 && load[0] > 0.5)
    std::printf("note: load average %.1f before the run: other processes share these cores, figures may be low\n",
                load[0]);
  std::printf("\n");
  print_header();

  // ---- BLAS sgemm: the peak the other rows are measured against.
  double peak = 0;
  std::vector<int64_t> gemm_sizes = opt.quick ? std::vector<int64_t>{1024} : std::vector<int64_t>{1024, 2048};
  for (int64_t n : gemm_sizes) {
    Tensor a = random_f32({n, n}, rng), b = random_f32({n, n}, rng), c = Tensor::zeros({n, n});
    double sec = time_op([&] { ops::matmul(c, a, false, b, false); }, reps);
    double gf = 2.0 * n * n * n / sec * 1e-9;
    peak = std::max(peak, gf);
    std::string shape = std::to_string(n) + "^3";
    std::printf("%-16s %-40s %10.3f %10.1f %10s\n", "sgemm (BLAS)", shape.c_str(), sec * 1e3, gf, "");
  }
  std::printf("%-16s %-40s %10s %10.1f %9.1f%%\n", "peak", "best sgemm above", "", peak, 100.0);

  // ---- linear layers on model-like shapes (N tokens).
  const int64_t N = opt.quick ? 1024 : 2048;
  const int64_t lin_shapes[][2] = {{256, 768}, {768, 256}, {256, 8192}};
  // Then the same in bf16 matmul precision (--matmul-precision bf16); "% peak" stays relative to fp32.
  const bool native_bf16 = cpu::gemm_bf16_native();
  for (MatmulPrecision prec : {MatmulPrecision::F32, MatmulPrecision::BF16}) {
    MatmulPrecisionScope scope(prec);
    const std::string suffix = prec == MatmulPrecision::BF16 ? (native_bf16 ? " bf16" : " bf16 (emulated)") : "";
    if (prec == MatmulPrecision::BF16) {
      const int64_t n = gemm_sizes.back();
      Tensor a = random_f32({n, n}, rng), b = random_f32({n, n}, rng), c = Tensor::zeros({n, n});
      print_row("matmul" + suffix, std::to_string(n) + "^3",
                time_op([&] { ops::matmul(c, a, false, b, false); }, reps), 2.0 * n * n * n, peak);
    }
    for (const auto& io : lin_shapes) {
      int64_t in = io[0], out = io[1];
      Tensor x = random_f32({N, in}, rng), w = random_f32({out, in}, rng, 0.05), y = Tensor::zeros({N, out});
      Tensor dy = random_f32({N, out}, rng), dx = Tensor::zeros({N, in}), dw = Tensor::zeros({out, in});
      std::string shape = "N=" + std::to_string(N) + " " + std::to_string(in) + "->" + std::to_string(out);
      double flops = 2.0 * N * in * out;
      print_row("linear_fwd" + suffix, shape, time_op([&] { ops::linear_fwd(y, x, w, nullptr); }, reps), flops,
                peak);
      print_row("linear_bwd" + suffix, shape + " (dx+dw)",
                time_op([&] { ops::linear_bwd(&dx, &dw, nullptr, dy, x, w); }, reps), 2 * flops, peak);
    }
  }

  // ---- attention: FLOPs of visible score entries only; per entry 4*Dh forward (q.k and p*v),
  // 10*Dh backward (recomputed q.k, dO.v, dQ, dK, dV).
  struct AttnCase {
    int64_t B, S, H, Hkv, Dh, chunk;
  };
  // The benchmark config's two kinds of layer (RoPE: chunked; NoPE: global), then a long sequence.
  std::vector<AttnCase> attn = {{8, 256, 8, 4, 32, 64}, {8, 256, 8, 4, 32, 0}, {8, 1024, 8, 4, 32, 0}};
  if (opt.quick) attn[2].B = 2;
  for (const AttnCase& c : attn) {
    Tensor q = random_f32({c.B, c.S, c.H, c.Dh}, rng), k = random_f32({c.B, c.S, c.Hkv, c.Dh}, rng);
    Tensor v = random_f32({c.B, c.S, c.Hkv, c.Dh}, rng), dout = random_f32({c.B, c.S, c.H, c.Dh}, rng);
    Tensor out = Tensor::empty(q.shape()), lse = Tensor::empty({c.B, c.H, c.S});
    Tensor dq = Tensor::zeros(q.shape()), dk = Tensor::zeros(k.shape()), dv = Tensor::zeros(v.shape());
    ops::AttentionParams p;
    p.scale = 1.0 / std::sqrt(double(c.Dh));
    p.chunk_size = c.chunk;
    double ds = 0;
    double entries = double(c.B * c.H) * visible_pairs(c.S, c.chunk);
    std::string shape = "B" + std::to_string(c.B) + " S" + std::to_string(c.S) + " H" + std::to_string(c.H) + "/" +
                        std::to_string(c.Hkv) + " Dh" + std::to_string(c.Dh) + " causal" +
                        (c.chunk ? " chunk " + std::to_string(c.chunk) : "");
    print_row("attention_fwd", shape, time_op([&] { ops::attention_fwd(out, &lse, q, k, v, p); }, reps),
              4.0 * c.Dh * entries, peak);
    print_row("attention_bwd", shape,
              time_op([&] { ops::attention_bwd(dq, dk, dv, &ds, dout, q, k, v, out, lse, p); }, reps),
              10.0 * c.Dh * entries, peak);
  }
  std::printf("  (attention FLOPs count visible score entries only: 4*Dh each forward, 10*Dh backward)\n\n");

  // ---- cross-entropy over the full vocabulary: memory-bound, so set against a plain parallel read
  // of the same logits.
  const int64_t rows = opt.quick ? 256 : 1024, V = 32001;
  Tensor logits = random_f32({rows, V}, rng, 4.0), targets = Tensor::empty({rows}, DType::I32);
  for (int64_t i = 0; i < rows; ++i) targets.data<int32_t>()[i] = int32_t(rng.below(uint64_t(V)));
  Tensor losses = Tensor::empty({rows}), lse = Tensor::empty({rows}), dlogits = Tensor::zeros({rows, V});
  Tensor dlosses = Tensor::empty({rows});
  dlosses.fill_(1.0 / double(rows));
  const float* lp = logits.data<float>();
  const int64_t total = rows * V;
  volatile float sink = 0;
  double read_sec = time_op(
      [&] {
        float sum = 0;
#pragma omp parallel reduction(+ : sum)
        {
          float part[16] = {};  // 16 independent lanes: a vectorised, bandwidth-bound read
#pragma omp for schedule(static)
          for (int64_t i = 0; i < total / 16; ++i)
            for (int w = 0; w < 16; ++w) part[w] += lp[i * 16 + w];
          for (float x : part) sum += x;
        }
        sink = sum;
      },
      reps);
  double bytes = double(total) * 4;
  double ce_fwd = time_op([&] { ops::cross_entropy_fwd(losses, lse, logits, targets); }, reps);
  double ce_bwd = time_op([&] { ops::cross_entropy_bwd(dlogits, dlosses, logits, targets, lse); }, reps);
  std::printf("%-16s %-40s %10s %10s %10s\n", "kernel", "shape", "ms", "GB/s", "% read");
  std::printf("%s\n", std::string(90, '-').c_str());
  std::string shape = "N=" + std::to_string(rows) + " V=" + std::to_string(V);
  auto gbrow = [&](const char* name, const std::string& sh, double sec, double b) {
    std::printf("%-16s %-40s %10.3f %10.1f %9.1f%%\n", name, sh.c_str(), sec * 1e3, b / sec * 1e-9,
                100.0 * (b / sec) / (bytes / read_sec));
  };
  gbrow("read (peer)", shape + " sum of logits", read_sec, bytes);
  gbrow("xent_fwd", shape + " (reads logits)", ce_fwd, bytes);
  gbrow("xent_bwd", shape + " (reads logits, += dlogits)", ce_bwd, 3 * bytes);
  std::printf("  (cross-entropy: %.1f k rows/s, %.0f M logits/s forward; %.0f M logits/s backward)\n",
              rows / ce_fwd * 1e-3, double(total) / ce_fwd * 1e-6, double(total) / ce_bwd * 1e-6);
}

}  // namespace

void add_bench_ops(CLI::App& bench) {
  CLI::App* cmd = bench.add_subcommand("ops", "GFLOP/s of the matmul and attention kernels beside the BLAS sgemm peak");
  auto opt = std::make_shared<OpsOptions>();
  cmd->add_option("--threads", opt->threads, "worker threads (0: all cores or OMP_NUM_THREADS)");
  cmd->add_flag("--quick", opt->quick, "smaller shapes and fewer repeats");
  cmd->callback([opt] { run_ops_bench(*opt); });
}

}  // namespace tv::bench
