// `tinyvlm bench instruct`: phase-3 training throughput (projector + decoder forward and backward from frozen
// tower features, clipping, AdamW), with batches padded to their longest conversation (tinyvlm's default)
// or to instruct_max_seq_len (the original's). scripts/bench/instruct.sh runs it beside the PyTorch
// reference (scripts/bench/instruct_peer.py), which builds the same batches from the same formula.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "bench/bench.h"
#include "core/ignore_index.h"
#include "core/ops.h"
#include "core/parallel.h"
#include "model/vlm.h"
#include "train/optimizer.h"

namespace tv::bench {
namespace {

struct InstructBenchArgs {
  int threads = 2;
  int64_t steps = 3, warmup = 1, batch = 8, max_seq = 512;
  bool pad_to_max = false, json = false;
};

// Conversation k of the run: its length and which positions are labelled (the assistant's turns), the
// same formula as instruct_peer.py.
int64_t bench_length(int64_t k) { return 32 + (k * 7919) % 224; }
bool bench_labelled(int64_t t, int64_t len) { return t == len - 1 || (t / 20) % 2 == 1; }

void run(const InstructBenchArgs& a) {
  set_num_threads(a.threads);
  const ModelConfig mc = bench_decoder_config(1024);
  VisionConfig vc;  // ViT-B/16: 196 tokens of 768
  ParamStore params;
  VisionLanguageModel vlm(mc, vc, params);
  Rng rng(1);
  vlm.llm().init_weights(rng);
  vlm.init_projector(rng);
  vlm.set_phase3_trainable(params);
  AdamW opt;
  opt.weight_decay = 0.01;
  const int64_t P = vlm.num_vision_tokens(), B = a.batch;
  double t_total = 0, labelled = 0, real = 0, computed = 0;
  for (int64_t i = 0; i < a.warmup + a.steps; ++i) {
    int64_t S = 1;
    for (int64_t b = 0; b < B; ++b) S = std::max(S, bench_length(i * B + b));
    if (a.pad_to_max) S = a.max_seq;
    std::vector<int32_t> ids(size_t(B * S), 3), labels(size_t(B * S), kIgnoreIndex);
    int64_t lab = 0, tok = 0;
    for (int64_t b = 0; b < B; ++b) {
      const int64_t L = bench_length(i * B + b);
      ids[size_t(b * S)] = vlm.image_token_id();
      for (int64_t t = 1; t < L; ++t) {
        ids[size_t(b * S + t)] = int32_t(4 + rng.below(uint64_t(mc.vocab_size - 4)));
        if (bench_labelled(t, L)) {
          labels[size_t(b * S + t)] = ids[size_t(b * S + t)];
          ++lab;
        }
      }
      tok += P + L - 1;
    }
    Tensor feats = Tensor::empty({B, P, vc.hidden});
    for (int64_t j = 0; j < feats.numel(); ++j) feats.data<float>()[j] = float(rng.normal());
    auto t0 = std::chrono::steady_clock::now();
    params.zero_grad();
    vlm_loss_step(vlm, feats, Tensor::from_i32({B, S}, ids), Tensor::from_i32({B, S}, labels), true);
    opt.apply(params, 2e-5, ops::clip_coefficient(ops::grad_norm(params.grads()), 1.0));
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (i >= a.warmup) {
      t_total += dt;
      labelled += double(lab);
      real += double(tok);
      computed += double(B * (P + S - 1));
    }
  }
  nlohmann::json j = {{"impl", "tinyvlm"},
                      {"threads", a.threads},
                      {"padding", a.pad_to_max ? "max" : "batch"},
                      {"steps", a.steps},
                      {"batch", B},
                      {"max_seq_len", a.max_seq},
                      {"step_ms", 1000 * t_total / double(a.steps)},
                      {"labelled_tokens_per_s", labelled / t_total},
                      {"tokens_per_s", real / t_total},
                      {"computed_positions_per_s", computed / t_total}};
  if (a.json) {
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("phase 3, padded to the %s: %.0f ms/step, %.0f labelled tokens/s, %.0f tokens/s (vision included)\n",
                a.pad_to_max ? "maximum" : "batch", j["step_ms"].get<double>(), labelled / t_total, real / t_total);
  }
}

}  // namespace

void add_bench_instruct(CLI::App& bench) {
  auto a = std::make_shared<InstructBenchArgs>();
  CLI::App* cmd = bench.add_subcommand("instruct", "Phase-3 training tokens/s (labelled and total), batch or max padding");
  cmd->add_option("--threads", a->threads, "Worker threads")->capture_default_str();
  cmd->add_option("--steps", a->steps, "Timed steps")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--warmup", a->warmup, "Untimed steps first")->capture_default_str();
  cmd->add_option("--batch", a->batch, "Conversations per batch")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_flag("--pad-to-max", a->pad_to_max, "Pad every batch to 512 tokens, as the original");
  cmd->add_flag("--json", a->json, "One JSON object");
  cmd->callback([a] { run(*a); });
}

}  // namespace tv::bench
