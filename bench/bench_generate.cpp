// `tinyvlm bench generate`: decode tokens/s of the full-size decoder (docs/spec.md section 1: d_model 768,
// 12 layers, 8 experts top-2, vocabulary 32000 + <image>; random weights) for each weight format and
// thread count, beside the memory bandwidth measured in the same run: a decode step reads every active
// weight once, so bandwidth / (active weight bytes per token) is the most tokens/s it can reach.
#include <CLI/CLI.hpp>

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "bench/bench.h"
#include "core/parallel.h"
#include "core/profile.h"
#include "model/generator.h"
#include "model/llama.h"
#include "model/weight_format.h"

namespace tv::bench {
namespace {

struct GenerateBenchArgs {
  std::string threads = "1,2", weights = "fp32,bf16,q8", shape = "full";
  int64_t prompt = 16, tokens = 32, rounds = 3, batch = 1;
  int64_t bandwidth_mb = 1024;
  bool json = false, profile = false;
};

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// The original's decoder (docs/spec.md section 1), with the <image> token in the vocabulary.
ModelConfig full_size_config() {
  ModelConfig mc;
  mc.vocab_size = 32001;
  mc.d_model = 768;
  mc.n_heads = 12;
  mc.n_kv_heads = 4;
  mc.n_layers = 12;
  mc.num_experts = 8;
  mc.num_experts_per_tok = 2;
  mc.d_expert = 1024;
  mc.d_ff_standard = 2048;
  mc.chunk_size = 512;
  mc.max_seq_len = 1024;
  return mc;
}

// Best of `passes` parallel streaming reads (a sum, so nothing is written) over `mb` MiB, in bytes/s.
double measure_bandwidth(int64_t mb, int passes) {
  const int64_t n = mb * (1 << 20) / int64_t(sizeof(float));
  std::unique_ptr<float[]> buf(new float[size_t(n)]);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) buf[size_t(i)] = float(i & 1023);
  double best = 0, sink = 0;
  for (int p = 0; p < passes; ++p) {
    const auto t0 = std::chrono::steady_clock::now();
    double total = 0;
#pragma omp parallel for schedule(static) reduction(+ : total)
    for (int64_t b = 0; b < n; b += 4096) {
      float acc[16] = {};
      const int64_t e = std::min(n, b + 4096);
      for (int64_t i = b; i < e; i += 16)
#pragma GCC unroll 16
        for (int j = 0; j < 16; ++j) acc[j] += buf[size_t(i + j)];
      for (float v : acc) total += v;
    }
    sink += total;
    best = std::max(best, double(n) * sizeof(float) / seconds_since(t0));
  }
  if (sink == 42) std::printf(" ");  // keep the reads
  return best;
}

// Bytes of the weights one token's decode step reads: every linear but the routed experts, of which
// num_experts_per_tok of num_experts, plus one embedding row.
double active_weight_bytes(Llama& llm) {
  const ModelConfig& mc = llm.config();
  double bytes = double(mc.d_model) * 4;
  for (LlamaLayer& L : llm.layers()) {
    for (Param* p : {L.wq, L.wk, L.wv, L.wo, L.w_gate, L.w_up, L.w_down, L.sh_gate, L.sh_up, L.sh_down, L.router, L.norm1,
                     L.norm2, L.q_norm, L.k_norm})
      if (p) bytes += double(p->value.nbytes());
    double routed = 0;
    for (const auto* e : {&L.e_gate, &L.e_up, &L.e_down})
      for (Param* p : *e) routed += double(p->value.nbytes());
    if (L.moe) bytes += routed * double(mc.num_experts_per_tok) / double(mc.num_experts);
  }
  return bytes + double(llm.output().value.nbytes());
}

// Decodes `tokens` new tokens after each prompt, greedy, no stop id, all the sequences together through
// the batched decode step (one weight pass per step for all of them); returns the seconds of the decode
// steps (prefill excluded). With `profile`, the op profile records the decode steps only.
double decode_batch(Llama& llm, const std::vector<std::vector<int32_t>>& prompts, int64_t tokens, bool profile = false) {
  GenerationOptions go;
  go.max_new_tokens = tokens;
  Generator g(llm, go);
  std::vector<GenerationState> states;
  states.reserve(prompts.size());
  for (const std::vector<int32_t>& p : prompts) states.push_back(g.start(Tensor(), p));
  std::vector<BatchEntry> batch;
  for (GenerationState& s : states) batch.push_back({&g, &s, -1});
  profile::enable(profile);
  const auto t0 = std::chrono::steady_clock::now();
  for (bool running = true; running;) {
    step_batch(batch);
    running = false;
    for (const GenerationState& s : states) running = running || !s.done();
  }
  const double seconds = seconds_since(t0);
  profile::enable(false);
  return seconds;
}

// The 1-minute load average (other processes competing for the cores), or -1 where unknown.
double load_average() {
  double l = -1;
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf", &l) != 1) l = -1;
    std::fclose(f);
  }
  return l;
}

// Logits of every position of the prompt [P, V], through the KV-cache path the decoder uses.
Tensor prompt_logits(Llama& llm, const std::vector<int32_t>& prompt) {
  KVCache cache = llm.make_cache(int64_t(prompt.size()));
  return llm.forward_cached(llm.embed(Tensor::from_i32({int64_t(prompt.size())}, prompt)), cache, true);
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

void run(const GenerateBenchArgs& a) {
  TV_CHECK(a.prompt >= 1 && a.tokens >= 1 && a.rounds >= 1 && a.batch >= 1 && a.bandwidth_mb >= 64,
           "bench generate: --prompt, --tokens, --rounds, --batch must be >= 1 and --bandwidth-mb >= 64");
  TV_CHECK(a.shape == "full" || a.shape == "bench", "--shape must be full or bench, got '", a.shape, "'");
  std::vector<int> threads;
  for (const std::string& t : split(a.threads)) {
    const int n = std::stoi(t);
    TV_CHECK(n >= 1 && n <= 256, "--threads: each count in [1, 256], got ", t);
    threads.push_back(n);
  }
  std::vector<WeightFormat> formats;
  for (const std::string& w : split(a.weights)) formats.push_back(parse_weight_format(w, "--weights"));
  const ModelConfig mc = a.shape == "full" ? full_size_config() : bench_decoder_config(1024);
  TV_CHECK(a.prompt + a.tokens <= mc.max_seq_len, "--prompt + --tokens must fit the context of ", mc.max_seq_len);
  Rng prng(3);
  std::vector<std::vector<int32_t>> prompts(size_t(a.batch), std::vector<int32_t>(size_t(a.prompt)));
  for (auto& p : prompts)
    for (auto& t : p) t = int32_t(prng.below(uint64_t(mc.vocab_size)));

  if (!a.json)
    std::printf("decode, %s decoder (d_model %lld, %lld layers, %lld experts top-%lld, vocab %lld), random weights, "
                "batch %lld, prompt %lld, %lld new tokens, best of %lld rounds; shared machine: noisy\n",
                a.shape.c_str(), (long long)mc.d_model, (long long)mc.n_layers, (long long)mc.num_experts,
                (long long)mc.num_experts_per_tok, (long long)mc.vocab_size, (long long)a.batch, (long long)a.prompt,
                (long long)a.tokens, (long long)a.rounds);
  nlohmann::json rows = nlohmann::json::array();
  // The fp32 model's logits over a 48-token prompt (every position; more than 16 rows, so the prefill's
  // large-N path): each format's relative error to them.
  std::vector<int32_t> logit_prompt(48);
  for (auto& t : logit_prompt) t = int32_t(prng.below(uint64_t(mc.vocab_size)));
  Tensor ref_logits;
  {
    ParamStore params;
    Llama llm(mc, params);
    Rng rng(1);
    llm.init_weights(rng);
    ref_logits = prompt_logits(llm, logit_prompt);
  }
  for (WeightFormat f : formats) {
    ParamStore params;
    Llama llm(mc, params);
    Rng rng(1);
    llm.init_weights(rng);
    convert_linear_weights(llm, f);
    const double bytes = active_weight_bytes(llm);
    double total_bytes = 0;
    for (Param* p : linear_weights(llm)) total_bytes += double(p->value.nbytes());
    const Tensor logits = prompt_logits(llm, logit_prompt);
    double num = 0, den = 0;
    int64_t same = 0;
    const int64_t V = logits.size(1);
    std::vector<double> per_position;  // each position's max |error| / max |fp32 logit|
    for (int64_t r = 0; r < logits.size(0); ++r) {
      const float *p = logits.data<float>() + r * V, *q = ref_logits.data<float>() + r * V;
      double pn = 0, pd = 0;
      for (int64_t v = 0; v < V; ++v) {
        pn = std::max(pn, double(std::fabs(p[v] - q[v])));
        pd = std::max(pd, double(std::fabs(q[v])));
      }
      num = std::max(num, pn);
      den = std::max(den, pd);
      per_position.push_back(pd > 0 ? pn / pd : 0.0);
      same += std::max_element(p, p + V) - p == std::max_element(q, q + V) - q;
    }
    std::sort(per_position.begin(), per_position.end());
    const double median = per_position[per_position.size() / 2];
    if (!a.json)
      std::printf("  %-4s logits over the %lld prompt positions: max |error| / max |fp32 logit| = %.2e (median position "
                  "%.2e); most likely token equal at %lld of %lld\n", weight_format_name(f), (long long)logits.size(0),
                  num / den, median, (long long)same, (long long)logits.size(0));
    for (int t : threads) {
      set_num_threads(t);
      decode_batch(llm, {prompts[0]}, 2);  // warm: first-touch of the weights, the team started
      // Rounds alternate a bandwidth pass and a decode, so that both see the machine's load of the moment;
      // the best of each is kept.
      // Two reads: over --bandwidth-mb (much larger than the caches: DRAM) and over as many bytes as the
      // model's linear weights (the decode's working set, which a large L3 may partly hold).
      double best = 1e30, bw = 0, bw_ws = 0, all_rounds = 0;
      if (a.profile) profile::reset();
      for (int64_t r = 0; r < a.rounds; ++r) {
        bw = std::max(bw, measure_bandwidth(a.bandwidth_mb, 1));
        bw_ws = std::max(bw_ws, measure_bandwidth(std::max<int64_t>(16, int64_t(total_bytes / double(1 << 20))), 1));
        const double sec = decode_batch(llm, prompts, a.tokens, a.profile);
        best = std::min(best, sec);
        all_rounds += sec;
      }
      const double tps = double(a.batch * a.tokens) / best, limit = bw / bytes, limit_ws = bw_ws / bytes;
      nlohmann::json row = {{"weights", weight_format_name(f)}, {"threads", t}, {"batch", a.batch},
                            {"tokens_per_s", tps}, {"bandwidth_gb_s", bw / 1e9},
                            {"active_weight_mb", bytes / 1e6}, {"limit_tokens_per_s", limit},
                            {"share_of_limit", tps / limit}, {"load_average", load_average()},
                            {"working_set_mb", total_bytes / 1e6}, {"working_set_bandwidth_gb_s", bw_ws / 1e9},
                            {"share_of_working_set_limit", tps / limit_ws},
                            {"logit_rel_error", num / den}, {"logit_rel_error_median_position", median}};
      rows.push_back(row);
      if (!a.json)
        std::printf("  %-4s %d thread%s: %6.1f tokens/s | DRAM %5.1f GB/s, %6.1f MB active weights/token -> limit %6.1f "
                    "tokens/s: %3.0f%% of it | a read of the weights' %.0f MB: %5.1f GB/s -> %6.1f tokens/s: %3.0f%% | "
                    "load %.1f\n",
                    weight_format_name(f), t, t > 1 ? "s" : " ", tps, bw / 1e9, bytes / 1e6, limit, 100 * tps / limit,
                    total_bytes / 1e6, bw_ws / 1e9, limit_ws, 100 * tps / limit_ws, load_average());
      std::fflush(stdout);
      if (a.profile && !a.json) {
        const double steps = double(a.rounds * a.batch * a.tokens);
        double in_ops = 0;
        for (const profile::Entry& e : profile::entries()) {
          std::printf("      %-26s %8.1f calls/token %8.3f ms/token\n", e.name.c_str(), double(e.calls) / steps,
                      1e3 * e.seconds / steps);
          in_ops += e.seconds;
        }
        std::printf("      %-26s %8s             %8.3f ms/token (of %.3f ms/token in all, profiled)\n", "(outside ops)", "",
                    1e3 * (all_rounds - in_ops) / steps, 1e3 * all_rounds / steps);
      }
    }
  }
  if (a.json) std::printf("%s\n", rows.dump().c_str());
}

}  // namespace

void add_bench_generate(CLI::App& bench) {
  auto a = std::make_shared<GenerateBenchArgs>();
  CLI::App* cmd = bench.add_subcommand(
      "generate", "Decode tokens/s per weight format (fp32, bf16, q8) beside the memory-bandwidth limit");
  cmd->add_option("--threads", a->threads, "Comma-separated thread counts")->capture_default_str();
  cmd->add_option("--weights", a->weights, "Comma-separated weight formats: fp32, bf16, q8")->capture_default_str();
  cmd->add_option("--shape", a->shape, "full (the original's decoder) or bench (bench train's)")->capture_default_str();
  cmd->add_option("--prompt", a->prompt, "Prompt tokens per sequence")->capture_default_str();
  cmd->add_option("--tokens", a->tokens, "New tokens per sequence")->capture_default_str();
  cmd->add_option("--rounds", a->rounds, "Timed rounds (the best is reported)")->capture_default_str();
  cmd->add_option("--batch", a->batch, "Sequences per round, decoded together by the batched decode step")
      ->capture_default_str();
  cmd->add_option("--bandwidth-mb", a->bandwidth_mb, "MiB streamed by the bandwidth measurement")->capture_default_str();
  cmd->add_flag("--json", a->json, "One JSON array instead of text");
  cmd->add_flag("--profile", a->profile, "Per-op time per decoded token (timed rounds)");
  cmd->callback([a] { run(*a); });
}

}  // namespace tv::bench
