// `tinyvlm bench decode`: decode tokens/s of the batched step (Llama::forward_decode) at several batch
// sizes on the full-size decoder (the original's config, random weights), beside the per-token path
// decoding used before it (forward_cached of one token: the prefill's code on one row) and the memory
// bandwidth measured in the same run. Each sequence of a batch starts from its own random prompt of
// --context tokens (prefilled, not timed); every step feeds one token to each.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "bench/bench.h"
#include "core/error.h"
#include "core/parallel.h"
#include "core/profile.h"
#include "model/generator.h"
#include "model/llama.h"

namespace tv::bench {
namespace {

struct DecodeBenchArgs {
  int threads = 2;
  std::string batches = "1,4,8,16";
  int64_t context = 64, steps = 16, warmup = 2, rounds = 2;
  bool json = false, small = false, profile = false;
};

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// CPU seconds of this process (all threads): on a shared machine, less at the mercy of the other jobs
// than wall time (with one thread it is the step's own work; with more it includes OpenMP's waits).
double process_cpu_seconds() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

std::vector<int64_t> parse_batches(const std::string& s) {
  std::vector<int64_t> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    char* end = nullptr;
    const long long v = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v < 1 || v > 256)
      fail("--batches: expected comma-separated batch sizes in [1, 256], got '", s, "'");
    out.push_back(v);
  }
  if (out.empty()) fail("--batches: expected at least one batch size");
  return out;
}

// Read bandwidth of this machine now: a sum over a buffer much larger than the caches (vectors of 8
// floats, four independent sums), best of a few passes.
double read_bandwidth_gbs(int64_t bytes) {
  typedef float V8 __attribute__((vector_size(32)));
  const int64_t n = bytes / int64_t(sizeof(V8));
  std::vector<V8> buf(size_t(n), V8{} + 1.0f);
  double best = 0;
  for (int r = 0; r < 5; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    double total = 0;
#pragma omp parallel reduction(+ : total)
    {
      V8 s0{}, s1{}, s2{}, s3{};
#pragma omp for schedule(static)
      for (int64_t i = 0; i < n; i += 4) {
        s0 += buf[size_t(i)];
        s1 += buf[size_t(i + 1)];
        s2 += buf[size_t(i + 2)];
        s3 += buf[size_t(i + 3)];
      }
      const V8 s = (s0 + s1) + (s2 + s3);
      for (int w = 0; w < 8; ++w) total += double(s[w]);
    }
    const double dt = seconds_since(t0);
    if (total < 0) std::printf("?");  // keeps the sum
    best = std::max(best, double(bytes) / dt / 1e9);
  }
  return best;
}

void run(const DecodeBenchArgs& a) {
  set_num_threads(a.threads);
  const std::vector<int64_t> batches = parse_batches(a.batches);
  if (a.context < 1 || a.steps < 1 || a.warmup < 0 || a.rounds < 1)
    fail("--context, --steps and --rounds must be >= 1 and --warmup >= 0");
  ModelConfig mc;  // the original's config
  if (a.small) mc = bench_decoder_config(1024);
  if (a.context + a.warmup + a.steps > mc.max_seq_len)
    fail("--context + --warmup + --steps must fit in max_seq_len (", mc.max_seq_len, ")");
  std::fprintf(stderr, "bench decode: building the %s decoder with random weights...\n", a.small ? "benchmark" : "full-size");
  ParamStore params;
  Llama model(mc, params);
  Rng rng(1);
  model.init_weights(rng);
  const int64_t D = mc.d_model, F = mc.d_expert, E = mc.num_experts;
  const int64_t expert_params = 3 * D * F;
  int64_t moe_layers = 0;
  for (int64_t l = 0; l < mc.n_layers; ++l) moe_layers += mc.is_moe(l);
  // Weights every step reads whatever the routing: all but the routed experts (the embedding rows
  // are a gather of n rows, not counted).
  const int64_t all_params = params.count() - mc.vocab_size * D;
  const int64_t fixed_params = all_params - moe_layers * E * expert_params;
  // A buffer far beyond the caches (512 MiB; 64 MiB for the small decoder, whose runs are short).
  const int64_t bw_bytes = int64_t(1) << (a.small ? 26 : 29);
  const double bw = read_bandwidth_gbs(bw_bytes);

  auto prompt = [&] {
    std::vector<int32_t> p(static_cast<size_t>(a.context));
    for (auto& t : p) t = int32_t(rng.below(uint64_t(mc.vocab_size)));
    return p;
  };
  auto prefill = [&](KVCache& c) {
    std::vector<int32_t> p = prompt();
    model.forward_cached(model.embed(Tensor::from_i32({a.context}, p)), c);
  };
  const int64_t cap = a.context + a.warmup + a.steps;

  // The per-token path of before: forward_cached of one token (allocations, tiled attention, sorted
  // routing), batch 1.
  auto measure_old = [&] {
    KVCache c = model.make_cache(cap);
    prefill(c);
    double t = 0;
    for (int64_t s = 0; s < a.warmup + a.steps; ++s) {
      Tensor x = model.embed(Tensor::from_i32({1}, {int32_t(rng.below(uint64_t(mc.vocab_size)))}));
      auto t0 = std::chrono::steady_clock::now();
      model.forward_cached(x, c);
      if (s >= a.warmup) t += seconds_since(t0);
    }
    return double(a.steps) / t;
  };
  struct Result {
    double tps = 0, ms = 0, experts = 0, cpu_tps = 0;
  };
  auto measure = [&](int64_t n, bool prof) {
    std::vector<KVCache> caches;
    for (int64_t i = 0; i < n; ++i) {
      caches.push_back(model.make_cache(cap));
      prefill(caches.back());
    }
    std::vector<KVCache*> ptrs;
    for (KVCache& c : caches) ptrs.push_back(&c);
    std::vector<int32_t> tokens(static_cast<size_t>(n));
    double t = 0, cpu = 0;
    Llama::DecodeStats before{};
    for (int64_t s = 0; s < a.warmup + a.steps; ++s) {
      if (s == a.warmup) {
        before = model.decode_stats();
        if (prof) {
          profile::reset();
          profile::enable(true);
        }
      }
      for (auto& tk : tokens) tk = int32_t(rng.below(uint64_t(mc.vocab_size)));
      auto t0 = std::chrono::steady_clock::now();
      const double c0 = process_cpu_seconds();
      model.forward_decode(tokens, ptrs);
      if (s >= a.warmup) {
        t += seconds_since(t0);
        cpu += process_cpu_seconds() - c0;
      }
    }
    profile::enable(false);
    Result r;
    r.tps = double(n * a.steps) / t;
    r.ms = 1e3 * t / double(a.steps);
    r.cpu_tps = double(n * a.steps) / cpu;
    r.experts = moe_layers ? double(model.decode_stats().experts_run - before.experts_run) / double(a.steps * moe_layers) : 0;
    return r;
  };
  // Rounds outside, batch sizes inside: the machine's changing load hits every batch size alike, and
  // each round's ratios to batch 1 compare runs seconds apart.
  std::vector<double> old_tps;
  std::vector<std::vector<Result>> res(batches.size());
  std::vector<std::vector<profile::Entry>> profiles(batches.size());
  for (int64_t r = 0; r < a.rounds; ++r) {
    old_tps.push_back(measure_old());
    for (size_t b = 0; b < batches.size(); ++b) {
      const bool prof = a.profile && r == a.rounds - 1;
      res[b].push_back(measure(batches[b], prof));
      if (prof) profiles[b] = profile::entries();
    }
  }
  const double bw_end = read_bandwidth_gbs(bw_bytes);
  const double old_best = *std::max_element(old_tps.begin(), old_tps.end());
  const size_t one = size_t(std::find(batches.begin(), batches.end(), 1) - batches.begin());
  if (!a.json)
    std::printf("tinyvlm decode, %s decoder (d_model %lld, %lld layers, %lld experts top-%lld, vocab %lld), fp32, "
                "%d threads, context %lld, %lld timed steps, %lld rounds (best shown)\n"
                "  read bandwidth %.1f GB/s before, %.1f after; weights read per step: %.0f MB + %.1f MB per routed "
                "expert run\n"
                "  per-token path before (forward_cached, batch 1): %.1f tokens/s\n",
                a.small ? "benchmark" : "full-size", (long long)D, (long long)mc.n_layers, (long long)E,
                (long long)mc.num_experts_per_tok, (long long)mc.vocab_size, a.threads, (long long)a.context,
                (long long)a.steps, (long long)a.rounds, bw, bw_end, 4e-6 * double(fixed_params),
                4e-6 * double(expert_params), old_best);
  if (!a.json)
    std::printf("  %6s %10s %12s %10s %18s %14s %11s %7s %12s\n", "batch", "ms/step", "tokens/s", "per seq",
                "vs b=1 (rounds)", "experts/layer", "weights MB", "GB/s", "tok/cpu_s");
  nlohmann::json rows = nlohmann::json::array();
  for (size_t b = 0; b < batches.size(); ++b) {
    const int64_t n = batches[b];
    Result best;
    double lo = 1e30, hi = 0, cpu_best = 0;
    for (size_t r = 0; r < res[b].size(); ++r) {
      if (res[b][r].tps > best.tps) best = res[b][r];
      cpu_best = std::max(cpu_best, res[b][r].cpu_tps);
      if (one < batches.size()) {
        const double ratio = res[b][r].tps / res[one][r].tps;
        lo = std::min(lo, ratio);
        hi = std::max(hi, ratio);
      }
    }
    const double mb = 4e-6 * (double(fixed_params) + best.experts * double(moe_layers * expert_params));
    const double gbs = mb / best.ms;  // MB per ms = GB/s
    rows.push_back({{"batch", n}, {"ms_per_step", best.ms}, {"tokens_per_s", best.tps},
                    {"per_sequence", best.tps / double(n)}, {"experts_per_moe_layer", best.experts},
                    {"weights_mb_per_step", mb}, {"weights_gb_per_s", gbs}, {"tokens_per_cpu_s", cpu_best}});
    if (one < batches.size()) {
      rows.back()["vs_batch1_min"] = lo;
      rows.back()["vs_batch1_max"] = hi;
    }
    if (!a.json) {
      char ratio[64] = "-";
      if (one < batches.size()) std::snprintf(ratio, sizeof ratio, "%.2f-%.2fx", lo, hi);
      std::printf("  %6lld %10.1f %12.1f %10.1f %18s %14.2f %11.0f %7.1f %12.1f\n", (long long)n, best.ms, best.tps,
                  best.tps / double(n), ratio, best.experts, mb, gbs, cpu_best);
    }
    if (a.profile && !a.json)
      for (const profile::Entry& e : profiles[b])
        std::printf("           %-24s %8.1f calls %8.2f ms per step\n", e.name.c_str(),
                    double(e.calls) / double(a.steps), 1e3 * e.seconds / double(a.steps));
  }
  if (a.json) {
    nlohmann::json j = {{"impl", "tinyvlm"},         {"config", a.small ? "benchmark" : "full-size"},
                        {"threads", a.threads},      {"context", a.context},
                        {"steps", a.steps},          {"read_bandwidth_gb_per_s", std::max(bw, bw_end)},
                        {"per_token_path_tokens_per_s", old_best}, {"batches", rows}};
    std::printf("%s\n", j.dump().c_str());
  }
}

}  // namespace

void add_bench_decode(CLI::App& bench) {
  auto a = std::make_shared<DecodeBenchArgs>();
  CLI::App* cmd = bench.add_subcommand(
      "decode", "Batched decode step tokens/s at several batch sizes (full-size decoder, random weights)");
  cmd->add_option("--threads", a->threads, "Threads")->capture_default_str();
  cmd->add_option("--batches", a->batches, "Comma-separated batch sizes")->capture_default_str();
  cmd->add_option("--context", a->context, "Prompt tokens of every sequence before the timed steps")
      ->capture_default_str();
  cmd->add_option("--steps", a->steps, "Timed decode steps per batch size and round")->capture_default_str();
  cmd->add_option("--warmup", a->warmup, "Untimed steps first")->capture_default_str();
  cmd->add_option("--rounds", a->rounds, "Rounds, each timing every batch size (the best is shown, and the range of each round's ratio to batch 1)")->capture_default_str();
  cmd->add_flag("--small", a->small, "The training benchmarks' small decoder instead of the full-size one");
  cmd->add_flag("--profile", a->profile, "Time every op of each batch size's last timed steps and print them");
  cmd->add_flag("--json", a->json, "One JSON object instead of text");
  cmd->callback([a] { run(*a); });
}

}  // namespace tv::bench
