#include "train/instruct.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "core/parallel.h"
#include "data/feature_cache.h"
#include "dist/comm.h"
#include "io/atomic_file.h"
#include "io/tensor_source.h"
#include "model/checkpoint.h"
#include "model/weight_format.h"
#include "tokenizer/bpe.h"
#include "train/evaluate.h"
#include "train/image_features.h"
#include "train/instruct_batches.h"
#include "train/run_tokenizer.h"

namespace tv {
namespace fs = std::filesystem;

std::unique_ptr<FeatureCache> open_feature_cache(const std::string& dir, VisionLanguageModel& vlm, const Config& cfg) {
  if (dir.empty()) return nullptr;
  // Features computed with bf16 matmuls differ from fp32 ones: they get a cache folder of their own.
  uint64_t key = vlm.tower().fingerprint();
  if (parse_matmul_precision(cfg.get_string("matmul_precision", "fp32"), cfg.source() + ": matmul_precision =") ==
      MatmulPrecision::BF16)
    key ^= 0x9e3779b97f4a7c15ull;
  const VisionConfig& vc = vlm.tower().config();
  return std::make_unique<FeatureCache>(dir, key, vc.num_patches(), vc.hidden);
}

namespace {

std::vector<std::string> row_images(const InstructTokens& t, const InstructSet& s) {
  std::vector<std::string> out;
  out.reserve(t.sample.size());
  for (int64_t i : t.sample) out.push_back(s.samples[size_t(i)].image);
  return out;
}

void write_skipped(const std::string& path, const std::vector<SkippedSample>& skipped) {
  std::string text;
  for (const SkippedSample& s : skipped) text += s.id + "\t" + s.reason + "\n";
  write_file_atomic(path, text);
}

}  // namespace

InstructResult instruct(const InstructOptions& a) {
  if (a.threads >= 0) set_num_threads(a.threads);
  if (a.model.empty()) fail("instruct: a phase-2 checkpoint is required (--model)");
  if (a.data.empty()) fail("instruct: an instruction data file is required (--data)");
  if (a.out.empty()) fail("instruct: an output folder is required (--out)");
  std::unique_ptr<LoadedVlm> m = load_vlm(a.model, a.config, a.sets);
  require_trainable_weights(m->model->llm(), a.model);
  const Config& cfg = m->config;
  VisionLanguageModel& vlm = *m->model;
  const std::string src = cfg.source();

  // Phase-3 settings: the original's defaults (visual_instruction_tuning/run.py), read from instruct_* keys.
  const int64_t B = cfg.get_int("instruct_batch_size", 8), S = cfg.get_int("instruct_max_seq_len", 512);
  const int64_t epochs = cfg.get_int("instruct_epochs", 1);
  const int64_t batches_per_epoch = cfg.get_int("instruct_batches_per_epoch", -1);
  const double lr = cfg.get_double("instruct_learning_rate", 2e-5), wd = cfg.get_double("instruct_weight_decay", 0.01);
  const double clip = cfg.get_double("instruct_max_grad_norm", 1.0);
  const int64_t val_batches = cfg.get_int("instruct_val_batches", 500);
  // tinyvlm's own keys.
  const double val_fraction = cfg.get_double("instruct_val_fraction", 0.05);
  const uint64_t split_seed = uint64_t(cfg.get_int("instruct_split_seed", 42));
  InstructBatchOptions bo;
  bo.batch = B;
  bo.batches_per_epoch = batches_per_epoch;
  bo.shuffle = cfg.get_bool("instruct_shuffle", true);
  bo.group_by_length = cfg.get_bool("instruct_group_by_length", false);
  bo.pad_to_max = cfg.get_bool("instruct_pad_to_max", false);
  bo.seed = uint64_t(cfg.get_int("seed", 313));
  InstructLoadOptions lo;
  lo.coco_only = cfg.get_bool("instruct_coco_only", true);
  if (B <= 0) fail(src, ": instruct_batch_size must be positive, got ", B);
  if (!(lr > 0)) fail(src, ": instruct_learning_rate must be positive");
  if (!(wd >= 0)) fail(src, ": instruct_weight_decay must be >= 0");
  if (!(clip > 0)) fail(src, ": instruct_max_grad_norm must be positive");
  if (epochs <= 0 && a.steps <= 0) fail(src, ": instruct_epochs must be positive");
  if (!(val_fraction >= 0 && val_fraction < 1)) fail(src, ": instruct_val_fraction must be in [0, 1)");

  const CheckpointTokenizer ct = require_checkpoint_tokenizer(a.tokenizer, a.model, m->text_config.vocab_size + 1);
  const tok::Tokenizer& tokenizer = *ct.tokenizer;
  const ConversationFormat fmt = conversation_format(tokenizer, m->text_config.vocab_size, S, ct.name);

  // Data.
  InstructSet train, val;
  InstructResult r;
  {
    InstructSet all = load_instruct(a.data, a.images, lo);
    r.not_coco = all.not_coco;
    if (!a.val_data.empty()) {
      train = std::move(all);
      val = load_instruct(a.val_data, a.val_images.empty() ? a.images : a.val_images, lo);
      r.not_coco += val.not_coco;
      train.skipped.insert(train.skipped.end(), val.skipped.begin(), val.skipped.end());
    } else {
      split_instruct(all, val_fraction, split_seed, train, val);
    }
    if (train.samples.empty() && all.not_coco > 0)
      fail(a.data, ": none of its ", all.records, " records names a COCO image (the original keeps only those); "
                   "set instruct_coco_only = false to keep every sample with an image");
  }
  std::vector<SkippedSample> skipped = train.skipped;
  const InstructTokens train_tok = tokenize_instruct(tokenizer, train, fmt, skipped);
  const InstructTokens val_tok = tokenize_instruct(tokenizer, val, fmt, skipped);
  if (train_tok.rows() < B)
    fail(a.data, ": ", train_tok.rows(), " usable training samples, fewer than one batch (instruct_batch_size = ", B, ")\n",
         skipped_report(skipped));
  const std::vector<std::string> train_img = row_images(train_tok, train), val_img = row_images(val_tok, val);

  // Model: the phase-2 checkpoint; the projector and the decoder train.
  vlm.set_phase3_trainable(m->params);
  std::unique_ptr<FeatureCache> cache = open_feature_cache(a.cache_features, vlm, cfg);
  ImageFeatureSource features(vlm.tower(), cache.get(), int(cfg.get_int("instruct_image_workers", 0)), B);
  InstructBatches batches(train_tok, train_img, fmt, features, bo);

  // An optimizer step takes instruct_grad_accum batches (a multiple of the ranks under mpirun), so an
  // epoch is that many times fewer steps: instruct_epochs stays the number of passes over the data.
  const int64_t accum = std::max<int64_t>(1, cfg.get_int("instruct_grad_accum", 1));
  const int64_t steps_per_epoch = std::max<int64_t>(1, batches.steps_per_epoch() / accum);
  const int64_t total = a.steps > 0 ? a.steps : epochs * steps_per_epoch;
  const int64_t warmup = cfg.get_int("instruct_warmup_steps", 500);
  const int64_t val_every = cfg.get_int("instruct_val_every", std::min(steps_per_epoch, total));
  if (warmup < 0) fail(src, ": instruct_warmup_steps must be >= 0");
  if (val_every < 0) fail(src, ": instruct_val_every must be >= 0");

  if (!a.quiet) {
    std::fprintf(stderr, "instruct: %lld training conversations, %lld validation; %lld truncated to %lld tokens; "
                         "batch %lld (%s)\n",
                 (long long)train_tok.rows(), (long long)val_tok.rows(), (long long)(train_tok.truncated + val_tok.truncated),
                 (long long)S, (long long)B,
                 bo.pad_to_max ? "padded to instruct_max_seq_len"
                               : bo.group_by_length ? "padded to the batch, grouped by length" : "padded to the batch");
    if (r.not_coco)
      std::fprintf(stderr, "instruct: %lld records without a COCO image left out (instruct_coco_only)\n", (long long)r.not_coco);
    std::fprintf(stderr, "instruct: %.2fM trainable of %.2fM parameters (tower frozen); %lld steps (%lld per epoch), "
                         "warmup %lld, lr %g; feature cache %s; %d threads\n",
                 double(m->params.count(true)) / 1e6, double(m->params.count()) / 1e6, (long long)total,
                 (long long)steps_per_epoch, (long long)warmup, lr, cache ? cache->dir().c_str() : "off", num_threads());
  }

  AdamW opt;
  opt.weight_decay = wd;
  TrainLoopConfig lc = loop_config("instruct", a, cfg, "instruct_");
  lc.total_steps = total;
  lc.warmup_steps = warmup;
  lc.lr = lr;
  lc.max_grad_norm = clip;
  lc.val_every = val_tok.rows() == 0 || val_batches <= 0 ? 0 : val_every;
  lc.metadata["tokenizer_json"] = tokenizer.to_json();  // the run folder is self-contained
  if (!a.tokenizer.empty()) lc.metadata["tokenizer"] = path_for_run(a.tokenizer, a.out);
  lc.metadata["image_token_id"] = std::to_string(fmt.image_id);
  lc.metadata["vlm_checkpoint"] = path_for_run(a.model, a.out);

  InstructBatch batch;
  TrainTask task;
  task.micro_step = [&] {
    batches.next(batch);
    VlmLoss l = vlm_loss_step(vlm, batch.features, Tensor::from_i32({batch.B, batch.S}, batch.ids),
                              Tensor::from_i32({batch.B, batch.S}, batch.labels), true);
    StepStats s;
    s.loss = l.loss;
    s.tokens = l.tokens;
    s.metrics = {{"ppl", std::exp(std::min(l.loss, 100.0))}, {"seq", double(batch.S)}};
    return s;
  };
  // Another rank computes this micro-batch. Its rows still go through the feature source here, since
  // which rows a batch holds depends on which images could be read (cheap with a feature cache).
  task.skip_micro = [&] { batches.next(batch); };
  task.validate = [&] {
    EvalStats e = evaluate_rows(vlm, features, val_tok, val_img, fmt, B, val_batches);
    return std::map<std::string, double>{{"val_loss", e.batch_mean},
                                         {"val_token_loss", e.token_mean},
                                         {"val_ppl", std::exp(std::min(e.batch_mean, 100.0))}};
  };
  task.data_state = [&] { return batches.state(); };
  task.restore_data_state = [&](const std::string& s) { batches.restore(s); };

  static_cast<TrainResult&>(r) = run_training(m->params, opt, lc, task);
  for (const auto& [image, why] : features.bad_images()) skipped.push_back({image, "unreadable image: " + why});
  r.skipped = skipped;
  r.train_samples = train_tok.rows();
  r.val_samples = val_tok.rows();
  r.truncated = train_tok.truncated + val_tok.truncated;
  r.tower_images = features.tower_images();
  r.cache_hits = cache ? cache->hits() : 0;
  if (dist::rank() != 0) return r;  // rank 0 writes and reports for a data-parallel job
  if (!skipped.empty()) write_skipped((fs::path(a.out) / "skipped_samples.tsv").string(), skipped);
  if (!a.quiet) {
    if (r.has_val)
      std::fprintf(stderr, "instruct: done, %lld steps (%lld skipped batches); validation loss %.4f -> %.4f (best %.4f)\n",
                   (long long)r.steps_done, (long long)r.skipped_batches, r.first_val, r.last_val, r.best_val);
    else
      std::fprintf(stderr, "instruct: done, %lld steps (no validation set)\n", (long long)r.steps_done);
    if (!skipped.empty())
      std::fprintf(stderr, "instruct: %s; the full list is in %s\n", skipped_report(skipped).c_str(),
                   (fs::path(a.out) / "skipped_samples.tsv").c_str());
  }
  return r;
}

}  // namespace tv
