#include "train/pretrain.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "core/parallel.h"
#include "data/token_source.h"
#include "dist/comm.h"
#include "model/llama.h"
#include "train/run_tokenizer.h"
#include "train/trainer.h"

namespace tv {

TrainResult pretrain(const PretrainOptions& a) {
  if (a.threads >= 0) set_num_threads(a.threads);
  Config cfg = Config::from_file(a.config);
  for (const auto& s : a.sets) cfg.set_override(s);
  ModelConfig mc = ModelConfig::from(cfg);  // a malformed config stops here, before any work

  // Phase-1 settings: the original's command-line defaults, overridable as config keys.
  const double lr = cfg.get_double("lr", 3e-4), wd = cfg.get_double("weight_decay", 0.1);
  const double alpha = cfg.get_double("aux_loss_alpha", 0.01), clip = cfg.get_double("max_grad_norm", 1.0);
  const int64_t epochs = cfg.get_int("epochs", 10), batches_per_epoch = cfg.get_int("batches_per_epoch", 1000);
  const int64_t B = cfg.get_int("batch_size", 8);
  const int64_t total = a.steps > 0 ? a.steps : epochs * batches_per_epoch;
  const int64_t warmup = cfg.get_int("warmup_steps", std::min<int64_t>(2000, total / 10));
  const int64_t val_every = cfg.get_int("val_every", std::min<int64_t>(batches_per_epoch, total));
  const int64_t val_batches = cfg.get_int("val_batches", 20);
  const double val_fraction = cfg.get_double("val_fraction", 0.05);
  const uint64_t seed = uint64_t(cfg.get_int("seed", 313));
  if (B <= 0) fail(a.config, ": batch_size must be positive");
  if (!(lr > 0)) fail(a.config, ": lr must be positive");

  TokenSourceInfo info;
  TokenStream stream = open_token_stream(a.data, a.tokenizer, &info);
  const int64_t id_bound = std::max(a.min_vocab, info.id_bound);
  if (mc.vocab_size < id_bound)
    fail(a.config, ": vocab_size = ", mc.vocab_size, " but the data holds token ids up to ", id_bound - 1, " (",
         info.id_source.empty() ? std::string("tokenizer") : info.id_source, ")");
  TokenWindows windows(stream, mc.max_seq_len, val_fraction, cfg.get_bool("shuffle", false), seed);
  if (!a.quiet)
    std::fprintf(stderr, "pretrain: %lld tokens (%s), %lld training and %lld validation windows of %lld\n",
               (long long)info.tokens,
               (info.shards ? std::to_string(info.shards) + " shard file(s)"
                            : std::to_string(info.documents) + " documents")
                   .c_str(),
               (long long)windows.train_windows(),
               (long long)windows.val_windows(), (long long)mc.max_seq_len);

  ParamStore params;
  Llama model(mc, params);
  Rng init_rng(seed);
  model.init_weights(init_rng);
  if (!a.quiet)
    std::fprintf(stderr, "pretrain: %lld layers, d_model %lld, %.2fM parameters, %lld threads\n", (long long)mc.n_layers,
               (long long)mc.d_model, double(params.count()) / 1e6, (long long)num_threads());

  AdamW opt;
  opt.weight_decay = wd;
  TrainLoopConfig lc = loop_config("pretrain", a, cfg, "");
  lc.total_steps = total;
  lc.warmup_steps = warmup;
  lc.lr = lr;
  lc.max_grad_norm = clip;
  lc.val_every = windows.val_windows() > 0 ? val_every : 0;
  if (!a.tokenizer.empty()) embed_tokenizer(lc.metadata, a.tokenizer, a.out);  // the run folder is self-contained

  TrainTask task;
  task.micro_step = [&] {
    Tensor ids, targets;
    windows.next_train(B, ids, targets);
    LmLoss l = lm_loss_step(model, ids, targets, alpha, true);
    StepStats s;
    s.loss = l.loss;
    s.metrics = {{"ce", l.ce}, {"ppl", std::exp(std::min(l.ce, 100.0))}, {"aux", l.aux}};
    s.tokens = l.tokens;
    return s;
  };
  task.skip_micro = [&] {
    Tensor ids, targets;
    windows.next_train(B, ids, targets);
  };
  task.validate = [&] {
    double sum = 0, aux = 0;
    int64_t tokens = 0, batches = 0;
    for (int64_t first = 0; first < windows.val_windows() && batches < val_batches; first += B, ++batches) {
      Tensor ids, targets;
      windows.val_batch(first, B, ids, targets);
      LmLoss l = lm_loss_step(model, ids, targets, 0.0, false);
      sum += l.ce * double(l.tokens);
      tokens += l.tokens;
      aux += l.aux;
    }
    double loss = tokens ? sum / double(tokens) : 0.0;
    return std::map<std::string, double>{
        {"val_loss", loss}, {"val_ppl", std::exp(std::min(loss, 100.0))}, {"val_aux", batches ? aux / double(batches) : 0.0}};
  };
  task.data_state = [&] { return windows.state(); };
  task.restore_data_state = [&](const std::string& s) { windows.restore(s); };

  TrainResult r = run_training(params, opt, lc, task);
  if (a.quiet || dist::rank() != 0) return r;  // rank 0 reports for a data-parallel job
  if (r.has_val)
    std::fprintf(stderr, "pretrain: done, %lld steps (%lld skipped batches); validation loss %.4f -> %.4f (best %.4f)\n",
                 (long long)r.steps_done, (long long)r.skipped_batches, r.first_val, r.last_val, r.best_val);
  else
    std::fprintf(stderr, "pretrain: done, %lld steps (no validation split)\n", (long long)r.steps_done);
  return r;
}

}  // namespace tv
