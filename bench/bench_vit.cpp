// `tinyvlm bench vit [--batch N] [--threads T] [--config C]`: images/s of the frozen vision tower's forward
// (ViT-B/16 at 224 by default: patch conv, 12 encoder layers, final LayerNorm; random weights), batched, with
// the achieved GFLOP/s. scripts/bench/vit_peer.py measures PyTorch on the same computation;
// scripts/bench/vit.sh prints both.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <ctime>

#include "bench/bench.h"
#include "core/parallel.h"
#include "core/precision.h"
#include "core/rng.h"
#include "model/config.h"
#include "model/vit.h"

namespace tv::bench {
namespace {

using Clock = std::chrono::steady_clock;

double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// Multiply-adds x 2 of one image's forward (GEMMs and attention; norms and GELU are not counted).
double flops_per_image(const VisionConfig& v) {
  const double P = double(v.num_patches()), D = double(v.hidden), F = double(v.mlp);
  const double patch = 2.0 * P * D * 3.0 * double(v.patch * v.patch);
  const double layer = 2.0 * P * D * 3.0 * D + 2.0 * 2.0 * P * P * D + 2.0 * P * D * D + 2.0 * 2.0 * P * D * F;
  return patch + double(v.layers) * layer;
}

struct Options {
  std::string config;
  std::vector<std::string> sets;
  int64_t batch = 8;
  int threads = 0;
  double min_seconds = 3.0;
  std::string matmul_precision = "fp32";
};

void run(const Options& o) {
  set_num_threads(o.threads);
  MatmulPrecisionScope precision(parse_matmul_precision(o.matmul_precision));
  Config cfg = o.config.empty() ? Config::from_string("", "<defaults>") : Config::from_file(o.config);
  for (const auto& s : o.sets) cfg.set_override(s);
  const VisionConfig vc = VisionConfig::from(cfg);
  ParamStore params;
  VisionTower tower(vc, params);
  params.set_trainable("", false);
  Rng rng(1);
  tower.init_weights(rng);
  Tensor pixels = Tensor::empty({o.batch, 3, vc.image, vc.image});
  for (int64_t i = 0, n = pixels.numel(); i < n; ++i) pixels.data<float>()[i] = float(rng.uniform(-2.0, 2.0));

  tower.forward(pixels, 0);  // warm-up: thread pools, page faults
  int64_t images = 0, calls = 0;
  const auto t0 = Clock::now();
  const double c0 = cpu_seconds();
  double t = 0;
  do {
    tower.forward(pixels, 0);
    images += o.batch;
    ++calls;
    t = std::chrono::duration<double>(Clock::now() - t0).count();
  } while (t < o.min_seconds);
  const double cpu = cpu_seconds() - c0;
  const double ips = double(images) / t;
  std::printf("vit (tinyvlm): %s, batch %lld, %d threads, %s matmuls\n", vc.describe().c_str(), (long long)o.batch,
              num_threads(), o.matmul_precision.c_str());
  std::printf("  forward    : %8.2f images/s  (%.1f ms/image, %.1f GFLOP/s; %lld calls in %.1f s, %.1f ms CPU/image)\n",
              ips, 1e3 / ips, ips * flops_per_image(vc) / 1e9, (long long)calls, t, 1e3 * cpu / double(images));
}

}  // namespace

void add_bench_vit(CLI::App& bench) {
  auto opt = std::make_shared<Options>();
  CLI::App* cmd = bench.add_subcommand("vit", "images/s of the vision tower's forward (ViT-B/16 by default)");
  cmd->add_option("--batch,-b", opt->batch, "images per forward")->check(CLI::PositiveNumber);
  cmd->add_option("--threads,-t", opt->threads, "worker threads (default: all cores)");
  cmd->add_option("--config", opt->config, "config with the tower shape (default: ViT-B/16 at 224)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--set", opt->sets, "override a config key, e.g. --set vision_num_layers=6");
  cmd->add_option("--min-time", opt->min_seconds, "seconds the measurement runs at least");
  cmd->add_option("--matmul-precision", opt->matmul_precision, "fp32 or bf16 (bf16 GEMM operands, fp32 sums)")
      ->capture_default_str();
  cmd->callback([opt] { run(*opt); });
}

}  // namespace tv::bench
