// `tinyvlm bench train`: phase-1 training throughput (forward + backward + clipping + AdamW) and
// generation speed with and without the KV cache, on the benchmark config of the text-model issue.
// scripts/bench/pretrain.sh runs it beside the PyTorch reference (scripts/bench/pretrain_peer.py).
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "bench/bench.h"
#include "core/ops.h"
#include "core/parallel.h"
#include "core/profile.h"
#include "core/precision.h"
#include "model/llama.h"
#include "model/generator.h"
#include "train/optimizer.h"

namespace tv::bench {
namespace {

struct TrainBenchArgs {
  int threads = 2;
  int64_t steps = 5, warmup = 2, batch = 8, seq = 256, prompt_len = 16, new_tokens = 64;
  bool json = false, profile = false;
  std::string matmul_precision = "fp32";
  int64_t head_chunk = 0;  // 0: the model's default
};

}  // namespace

ModelConfig bench_decoder_config(int64_t max_seq_len) {
  ModelConfig mc;
  mc.vocab_size = 8192;
  mc.d_model = 256;
  mc.n_heads = 8;
  mc.n_kv_heads = 4;
  mc.n_layers = 4;
  mc.num_experts = 8;
  mc.num_experts_per_tok = 2;
  mc.d_expert = 256;
  mc.d_ff_standard = 512;
  mc.chunk_size = 64;
  mc.max_seq_len = max_seq_len;
  return mc;
}

namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

void run(const TrainBenchArgs& a) {
  set_num_threads(a.threads);
  MatmulPrecisionScope precision(parse_matmul_precision(a.matmul_precision));
  const ModelConfig mc = bench_decoder_config(a.seq);
  ParamStore params;
  Llama model(mc, params);
  Rng rng(1);
  model.init_weights(rng);
  if (a.head_chunk > 0) model.set_head_chunk_rows(a.head_chunk);
  AdamW opt;
  std::vector<int32_t> tok(size_t(a.batch * a.seq));
  auto batch = [&](Tensor& ids, Tensor& tg) {
    for (auto& t : tok) t = int32_t(rng.below(uint64_t(mc.vocab_size)));
    ids = Tensor::from_i32({a.batch, a.seq}, tok);
    for (auto& t : tok) t = int32_t(rng.below(uint64_t(mc.vocab_size)));
    tg = Tensor::from_i32({a.batch, a.seq}, tok);
  };
  // The steps of lm_loss_step, timed one by one: layers forward, head (projection + cross-entropy, forward
  // and backward), layers backward; then clipping + AdamW.
  double t_fb = 0, t_opt = 0, t_fwd = 0, t_head = 0, t_bwd = 0;
  const int64_t N = a.batch * a.seq;
  for (int64_t i = 0; i < a.warmup + a.steps; ++i) {
    if (a.profile && i == a.warmup) {  // the timed steps only
      profile::reset();
      profile::enable(true);
    }
    Tensor ids, tg;
    batch(ids, tg);
    auto t0 = std::chrono::steady_clock::now();
    params.zero_grad();
    Tensor x = model.forward_hidden(model.embed(ids), a.batch, a.seq, true);
    const double f = seconds_since(t0);
    Tensor dx;
    model.head_loss(x, tg.view({N}), &dx);
    x = Tensor();
    const double h = seconds_since(t0) - f;
    model.embed_backward(ids, model.backward_hidden(dx, 0.01, true));
    const double fb = seconds_since(t0);
    auto t1 = std::chrono::steady_clock::now();
    opt.apply(params, 3e-4, ops::clip_coefficient(ops::grad_norm(params.grads()), 1.0));  // as the trainer
    double o = seconds_since(t1);
    if (i >= a.warmup) {
      t_fb += fb;
      t_opt += o;
      t_fwd += f;
      t_head += h;
      t_bwd += fb - f - h;
    }
  }
  profile::enable(false);
  const double tokens = double(a.steps * a.batch * a.seq);
  const double train_tps = tokens / (t_fb + t_opt);

  // Generation: greedy, batch 1, with the KV cache and by recomputing the sequence (the original's way).
  std::vector<int32_t> prompt(size_t(a.prompt_len));
  for (auto& t : prompt) t = int32_t(rng.below(uint64_t(mc.vocab_size)));
  // No stop id: every run generates new_tokens tokens.
  GenerationOptions go;
  go.max_new_tokens = a.new_tokens;
  auto t2 = std::chrono::steady_clock::now();
  {
    Generator g(model, go);
    GenerationState s = g.start(Tensor(), prompt);
    g.run(s);
  }
  const double gen_cache = double(a.new_tokens) / seconds_since(t2);
  go.use_cache = false;
  auto t3 = std::chrono::steady_clock::now();
  {
    Generator g(model, go);
    GenerationState s = g.start(Tensor(), prompt);
    g.run(s);
  }
  const double gen_nocache = double(a.new_tokens) / seconds_since(t3);

  nlohmann::json j = {{"impl", "tinyvlm"},
                      {"threads", a.threads},
                      {"matmul_precision", a.matmul_precision},
                      {"params", params.count()},
                      {"tokens_per_step", a.batch * a.seq},
                      {"train_tokens_per_s", train_tps},
                      {"ms_per_step", 1e3 * (t_fb + t_opt) / double(a.steps)},
                      {"ms_forward_backward", 1e3 * t_fb / double(a.steps)},
                      {"ms_optimizer", 1e3 * t_opt / double(a.steps)},
                      {"ms_layers_forward", 1e3 * t_fwd / double(a.steps)},
                      {"ms_head", 1e3 * t_head / double(a.steps)},
                      {"ms_layers_backward", 1e3 * t_bwd / double(a.steps)},
                      {"generate_tokens_per_s_kv_cache", gen_cache},
                      {"generate_tokens_per_s_no_cache", gen_nocache}};
  const std::vector<profile::Entry> ops = a.profile ? profile::entries() : std::vector<profile::Entry>{};
  double ops_seconds = 0;
  for (const profile::Entry& e : ops) ops_seconds += e.seconds;
  if (a.profile) {
    nlohmann::json rows = nlohmann::json::array();
    for (const profile::Entry& e : ops)
      rows.push_back({{"op", e.name}, {"calls_per_step", double(e.calls) / double(a.steps)},
                      {"ms_per_step", 1e3 * e.seconds / double(a.steps)}});
    j["profile"] = rows;
    j["ms_outside_ops"] = 1e3 * (t_fb + t_opt - ops_seconds) / double(a.steps);
  }
  if (a.json) {
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("tinyvlm training, d_model 256, 4 layers, 8/4 heads, 8 experts top-2, vocab 8192, batch %lldx%lld, "
                "%d threads, %s matmuls\n",
                (long long)a.batch, (long long)a.seq, a.threads, a.matmul_precision.c_str());
    const double per = 1e3 / double(a.steps);
    std::printf("  train: %.0f tokens/s (%.0f ms/step: layers forward %.0f ms, head + loss forward and backward %.0f ms, "
                "layers backward %.0f ms, clip + AdamW %.0f ms)\n",
                train_tps, per * (t_fb + t_opt), per * t_fwd, per * t_head, per * t_bwd, per * t_opt);
    std::printf("  generate (batch 1, prompt %lld, %lld new): %.1f tokens/s with KV cache, %.1f tokens/s recomputing\n",
                (long long)a.prompt_len, (long long)a.new_tokens, gen_cache, gen_nocache);
    if (a.profile) {
      const double step = (t_fb + t_opt) / double(a.steps);
      std::printf("\n  %-28s %10s %10s %8s\n", "op (per training step)", "calls", "ms", "% step");
      auto row = [&](const char* name, double calls, double seconds) {
        std::printf("  %-28s %10.1f %10.2f %7.1f%%\n", name, calls, 1e3 * seconds, 100.0 * seconds / step);
      };
      for (const profile::Entry& e : ops)
        row(e.name.c_str(), double(e.calls) / double(a.steps), e.seconds / double(a.steps));
      std::printf("  %-28s %10s %10.2f %7.1f%%\n", "(outside ops)", "",
                  1e3 * (step - ops_seconds / double(a.steps)), 100.0 * (1.0 - ops_seconds / double(a.steps) / step));
    }
  }
}

}  // namespace

void add_bench_train(CLI::App& bench) {
  auto a = std::make_shared<TrainBenchArgs>();
  CLI::App* cmd = bench.add_subcommand("train", "Phase-1 training tokens/s and generation tokens/s (benchmark config)");
  cmd->add_option("--threads", a->threads, "Threads")->capture_default_str();
  cmd->add_option("--steps", a->steps, "Timed training steps")->capture_default_str();
  cmd->add_option("--warmup", a->warmup, "Untimed warmup steps")->capture_default_str();
  cmd->add_option("--batch", a->batch, "Sequences per step")->capture_default_str();
  cmd->add_option("--seq", a->seq, "Tokens per sequence")->capture_default_str();
  cmd->add_option("--new-tokens", a->new_tokens, "Generated tokens")->capture_default_str();
  cmd->add_option("--matmul-precision", a->matmul_precision, "fp32 or bf16 (bf16 operands, fp32 accumulation)")
      ->capture_default_str();
  cmd->add_option("--head-chunk", a->head_chunk, "Rows per chunk of the output layer + loss (default: the model's)");
  cmd->add_flag("--json", a->json, "One JSON object instead of text");
  cmd->add_flag("--profile", a->profile, "Time every op of the timed training steps and print the table");
  cmd->callback([a] { run(*a); });
}

}  // namespace tv::bench
