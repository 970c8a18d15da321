// `tinyvlm bench dpo`: phase-4 training throughput in preference pairs/s and the process's peak memory, with a
// live reference (a second, frozen model: one forward of the 2B sequences) or with precomputed reference
// log-probabilities (one model). Each step: the policy's forward and backward of the chosen and rejected
// sequences as one batch from frozen tower features, clipping, AdamW. scripts/bench/dpo.sh runs it beside the
// PyTorch reference (scripts/bench/dpo_peer.py), which builds the same pairs from the same formula.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "bench/bench.h"
#include "core/ignore_index.h"
#include "core/ops.h"
#include "core/parallel.h"
#include "model/vlm.h"
#include "train/dpo_step.h"
#include "train/optimizer.h"

namespace tv::bench {
namespace {

struct DpoBenchArgs {
  int threads = 2;
  int64_t steps = 3, warmup = 1, batch = 4;
  bool precomputed = false, json = false;
};

// Pair k: prompt and response lengths, the same formula as dpo_peer.py.
int64_t prompt_len(int64_t k) { return 12 + (k * 31) % 40; }
int64_t response_len(int64_t k, int which) { return 8 + (k * 7919 + which * 104729) % 150; }

double peak_rss_mib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return 0;
}

void run(const DpoBenchArgs& a) {
  set_num_threads(a.threads);
  const ModelConfig mc = bench_decoder_config(1024);
  VisionConfig vc;  // ViT-B/16: 196 tokens of 768 (the towers are held, as in training, but not run)
  ParamStore params, ref_params;
  VisionLanguageModel vlm(mc, vc, params);
  Rng rng(1);
  vlm.llm().init_weights(rng);
  vlm.init_projector(rng);
  vlm.set_phase3_trainable(params);
  std::unique_ptr<VisionLanguageModel> ref;
  if (!a.precomputed) {
    ref = std::make_unique<VisionLanguageModel>(mc, vc, ref_params);
    ref_params.set_trainable("", false);  // forward only: no gradient memory
    for (const Param& p : params.all()) ref_params.find(p.name)->value.copy_from(p.value);
  }
  AdamW opt;
  opt.weight_decay = 0.01;
  const int64_t P = vlm.num_vision_tokens(), B = a.batch;
  double t_total = 0, pairs = 0, tokens = 0;
  for (int64_t i = 0; i < a.warmup + a.steps; ++i) {
    int64_t S = 1;
    for (int64_t b = 0; b < B; ++b)
      for (int w = 0; w < 2; ++w) S = std::max(S, 1 + prompt_len(i * B + b) + response_len(i * B + b, w) + 1);
    std::vector<int32_t> ids(size_t(2 * B * S), 3), labels(size_t(2 * B * S), kIgnoreIndex);
    int64_t tok = 0;
    for (int w = 0; w < 2; ++w)
      for (int64_t b = 0; b < B; ++b) {
        const int64_t k = i * B + b, row = w * B + b, lp = 1 + prompt_len(k), L = lp + response_len(k, w) + 1;
        ids[size_t(row * S)] = vlm.image_token_id();
        for (int64_t t = 1; t < L; ++t) {
          ids[size_t(row * S + t)] = t == L - 1 ? 2 : int32_t(4 + rng.below(uint64_t(mc.vocab_size - 4)));
          if (t >= lp) labels[size_t(row * S + t)] = ids[size_t(row * S + t)];
        }
        tok += P + L - 1;
      }
    Tensor feats = Tensor::empty({B, P, vc.hidden});
    for (int64_t j = 0; j < feats.numel(); ++j) feats.data<float>()[j] = float(rng.normal());
    DpoLogps fixed;  // "precomputed" reference log-probabilities
    for (int64_t b = 0; b < B; ++b) {
      fixed.chosen.push_back(-3.0 * double(response_len(i * B + b, 0)));
      fixed.rejected.push_back(-3.0 * double(response_len(i * B + b, 1)));
    }
    auto t0 = std::chrono::steady_clock::now();
    const Tensor f2 = repeat_pair_features(feats);
    const Tensor ti = Tensor::from_i32({2 * B, S}, ids), tl = Tensor::from_i32({2 * B, S}, labels);
    params.zero_grad();
    const DpoLogps r = ref ? dpo_sequence_logps(*ref, f2, ti, tl) : fixed;
    dpo_policy_step(vlm, f2, ti, tl, r, DpoLossKind::Sigmoid, 0.1, true);
    opt.apply(params, 5e-6, ops::clip_coefficient(ops::grad_norm(params.grads()), 1.0));
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (i >= a.warmup) {
      t_total += dt;
      pairs += double(B);
      tokens += double(tok);
    }
  }
  nlohmann::json j = {{"impl", "tinyvlm"},
                      {"threads", a.threads},
                      {"reference", a.precomputed ? "precomputed" : "live"},
                      {"steps", a.steps},
                      {"batch", B},
                      {"step_ms", 1000 * t_total / double(a.steps)},
                      {"pairs_per_s", pairs / t_total},
                      {"tokens_per_s", tokens / t_total},
                      {"peak_rss_mib", peak_rss_mib()}};
  if (a.json) {
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("phase 4, %s reference: %.0f ms/step, %.2f pairs/s, %.0f tokens/s (policy, vision included), peak RSS %.0f MiB\n",
                a.precomputed ? "precomputed" : "live", j["step_ms"].get<double>(), pairs / t_total, tokens / t_total,
                peak_rss_mib());
  }
}

}  // namespace

void add_bench_dpo(CLI::App& bench) {
  auto a = std::make_shared<DpoBenchArgs>();
  CLI::App* cmd = bench.add_subcommand("dpo", "Phase-4 (DPO) training pairs/s and peak memory, live or precomputed reference");
  cmd->add_option("--threads", a->threads, "Worker threads")->capture_default_str();
  cmd->add_option("--steps", a->steps, "Timed steps")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--warmup", a->warmup, "Untimed steps first")->capture_default_str();
  cmd->add_option("--batch", a->batch, "Pairs per batch")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_flag("--precomputed", a->precomputed, "Precomputed reference log-probs (no reference model)");
  cmd->add_flag("--json", a->json, "One JSON object");
  cmd->callback([a] { run(*a); });
}

}  // namespace tv::bench
