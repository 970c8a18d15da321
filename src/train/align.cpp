#include "train/align.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <numeric>
#include <sstream>

#include "core/parallel.h"
#include "dist/comm.h"
#include "data/captions.h"
#include "data/feature_cache.h"
#include "io/tensor_source.h"
#include "model/checkpoint.h"
#include "model/vlm.h"
#include "tokenizer/bpe.h"
#include "train/run_tokenizer.h"
#include "train/image_features.h"

namespace tv {

namespace {

// Where the training data stands: the epoch, the next sample position in that epoch's order, the batches
// already drawn from it, and the samples skipped so far (unreadable images). Everything else is derived.
struct DataPos {
  int64_t epoch = 0, cursor = 0, batch = 0, skipped = 0;
  std::string str() const { return str_cat(epoch, " ", cursor, " ", batch, " ", skipped); }
  static DataPos parse(const std::string& s) {
    DataPos p;
    std::istringstream in(s);
    if (!(in >> p.epoch >> p.cursor >> p.batch >> p.skipped)) fail("align --resume: unreadable data position '", s, "'");
    return p;
  }
};

std::vector<int64_t> epoch_order(int64_t n, int64_t epoch, bool shuffle, uint64_t seed) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  if (shuffle) {
    Rng rng(seed + 0x9e3779b97f4a7c15ull * uint64_t(epoch + 1));
    for (int64_t i = n - 1; i > 0; --i) std::swap(order[size_t(i)], order[rng.below(uint64_t(i + 1))]);
  }
  return order;
}

}  // namespace

AlignResult align(const AlignOptions& a) {
  namespace fs = std::filesystem;
  if (a.threads >= 0) set_num_threads(a.threads);
  if (a.llm.empty()) fail("align: a phase-1 checkpoint is required (--llm)");
  if (a.vit.empty()) fail("align: the vision tower weights are required (--vit)");
  if (a.captions.empty()) fail("align: a captions file is required (--captions)");
  Config cfg = resolve_config(a.config, a.llm, a.sets);
  const ModelConfig mc = ModelConfig::from(cfg);
  const VisionConfig vc = VisionConfig::from(cfg);
  const std::string src = cfg.source();

  // Phase-2 settings: the original's defaults (vision_language_alignment/run.py), read from vlm_* keys.
  const int64_t B = cfg.get_int("vlm_batch_size", 8), S = cfg.get_int("vlm_max_seq_len", 64);
  const int64_t epochs = cfg.get_int("vlm_epochs", 3), batches_per_epoch = cfg.get_int("vlm_batches_per_epoch", -1);
  const double lr = cfg.get_double("vlm_learning_rate", 2e-4), wd = cfg.get_double("vlm_weight_decay", 0.01);
  const double clip = cfg.get_double("vlm_max_grad_norm", 1.0);
  const int64_t val_batches = cfg.get_int("vlm_val_batches", 500);
  const double val_fraction = cfg.get_double("vlm_val_fraction", 0.05);
  const bool shuffle = cfg.get_bool("vlm_shuffle", false);
  const uint64_t seed = uint64_t(cfg.get_int("seed", 313));
  if (B <= 0) fail(src, ": vlm_batch_size must be positive");
  if (!(lr > 0)) fail(src, ": vlm_learning_rate must be positive");
  if (epochs <= 0 && a.steps <= 0) fail(src, ": vlm_epochs must be positive");

  // Tokenizer: given, or the one the phase-1 run recorded.
  // Either format: tinyvlm's .safetensors or the original's torch.save .pt.
  const std::unique_ptr<TensorSource> llm_source = open_tensor_file(a.llm);
  const TensorSource& llm_file = *llm_source;
  const CheckpointTokenizer ct = require_checkpoint_tokenizer(a.tokenizer, a.llm);
  const tok::Tokenizer& tokenizer = *ct.tokenizer;
  const std::string& tok_path = ct.name;
  const CaptionFormat fmt = caption_format(tokenizer, mc.vocab_size, S, tok_path);

  // Data.
  CaptionSet train, val;
  {
    CaptionSet all = load_captions(a.captions, a.images, a.image_column, a.caption_column);
    if (!a.val_captions.empty()) {
      train = std::move(all);
      val = load_captions(a.val_captions, a.val_images.empty() ? a.images : a.val_images, a.image_column, a.caption_column);
    } else {
      split_by_image(all, val_fraction, train, val);
    }
  }
  if (int64_t(train.samples.size()) < B)
    fail(a.captions, ": ", train.samples.size(), " training captions, fewer than one batch (vlm_batch_size = ", B, ")");
  const CaptionTokens train_tok = tokenize_captions(tokenizer, train, fmt), val_tok = tokenize_captions(tokenizer, val, fmt);
  std::vector<std::string> train_img(train.samples.size()), val_img(val.samples.size());
  for (size_t i = 0; i < train.samples.size(); ++i) train_img[i] = train.images[size_t(train.samples[i].image)];
  for (size_t i = 0; i < val.samples.size(); ++i) val_img[i] = val.images[size_t(val.samples[i].image)];
  const int64_t n_train = int64_t(train.samples.size());

  // Model: tower + fresh projector + the phase-1 decoder grown by <image>; only the projector trains.
  ParamStore params;
  VisionLanguageModel vlm(mc, vc, params);
  std::string layout;
  {
    layout = vlm.tower().load(*open_tensor_file(a.vit));  // torchvision's .pth or a .safetensors
  }
  Rng init_rng(seed);
  ParamStore::LoadReport rep = vlm.load_llm(llm_file, init_rng);
  vlm.init_projector(init_rng);
  vlm.set_phase2_trainable(params);

  std::unique_ptr<FeatureCache> cache;
  if (!a.cache_features.empty()) {
    // Features computed with bf16 matmuls differ from fp32 ones: they get a cache folder of their own.
    uint64_t key = vlm.tower().fingerprint();
    if (parse_matmul_precision(cfg.get_string("matmul_precision", "fp32"), cfg.source() + ": matmul_precision =") ==
        MatmulPrecision::BF16)
      key ^= 0x9e3779b97f4a7c15ull;
    cache = std::make_unique<FeatureCache>(a.cache_features, key, vc.num_patches(), vc.hidden);
  }
  ImageFeatureSource features(vlm.tower(), cache.get(), int(cfg.get_int("vlm_image_workers", 0)), B);

  const int64_t full_epoch = n_train / B;
  const int64_t steps_per_epoch = batches_per_epoch > 0 ? std::min(batches_per_epoch, full_epoch) : full_epoch;
  const int64_t total = a.steps > 0 ? a.steps : epochs * steps_per_epoch;
  const int64_t warmup = cfg.get_int("vlm_warmup_steps", std::min<int64_t>(1000, total / 100));
  const int64_t val_every = cfg.get_int("vlm_val_every", std::min(steps_per_epoch, total));

  if (!a.quiet) {
    std::fprintf(stderr, "align: %lld training captions (%zu images), %zu validation captions (%zu images); batch %lld, "
                         "%lld tokens per caption\n",
                 (long long)n_train, train.images.size(), val.samples.size(), val.images.size(), (long long)B, (long long)S);
    std::fprintf(stderr, "align: tower %s (%s weights), %lld vision tokens; decoder %lld layers, d_model %lld "
                         "(%lld tensors loaded, %lld unused ignored); <image> = %d\n",
                 vc.describe().c_str(), layout.c_str(), (long long)vc.num_patches(), (long long)mc.n_layers,
                 (long long)mc.d_model, (long long)rep.loaded, (long long)rep.ignored, fmt.image_id);
    std::fprintf(stderr, "align: %.2fM trainable of %.2fM parameters; %lld steps (%lld per epoch), warmup %lld; "
                         "feature cache %s; %d threads\n",
                 double(params.count(true)) / 1e6, double(params.count()) / 1e6, (long long)total,
                 (long long)steps_per_epoch, (long long)warmup, cache ? cache->dir().c_str() : "off", num_threads());
  }

  // The training stream: epochs over the (optionally shuffled) samples; a batch is the next B samples whose
  // image could be read; a partial batch at the end of an epoch is dropped, as the original's loader does.
  DataPos pos;
  std::vector<int64_t> order = epoch_order(n_train, 0, shuffle, seed);
  std::unique_ptr<ImageFeatureStream> stream;
  int64_t stream_start = 0;
  auto set_epoch = [&](int64_t e) {
    pos.epoch = e;
    pos.cursor = 0;
    pos.batch = 0;
    stream.reset();
    order = epoch_order(n_train, e, shuffle, seed);
  };
  auto next_batch = [&](Tensor& feats, std::vector<int64_t>& rows) {
    for (;;) {
      if ((batches_per_epoch > 0 && pos.batch >= batches_per_epoch) || pos.cursor >= n_train) {
        if (pos.batch == 0)
          fail("align: not one batch of ", B, " readable images in a whole pass over ", a.captions, "\n",
               features.bad_report());
        set_epoch(pos.epoch + 1);
      }
      if (!stream) {
        std::vector<std::string> plan;
        plan.reserve(size_t(n_train - pos.cursor));
        for (int64_t i = pos.cursor; i < n_train; ++i) plan.push_back(train_img[size_t(order[size_t(i)])]);
        stream = std::make_unique<ImageFeatureStream>(features, std::move(plan));
        stream_start = pos.cursor;
      }
      std::vector<size_t> used;
      int64_t skipped = 0;
      feats = stream->take(B, used, &skipped);
      pos.skipped += skipped;
      pos.cursor = stream_start + int64_t(stream->position());
      if (int64_t(used.size()) == B) {
        rows.clear();
        for (size_t u : used) rows.push_back(order[size_t(stream_start + int64_t(u))]);
        ++pos.batch;
        return;
      }
      pos.cursor = n_train;  // the end of the epoch: drop the partial batch
    }
  };

  AdamW opt;
  opt.weight_decay = wd;
  TrainLoopConfig lc = loop_config("align", a, cfg, "vlm_");
  lc.total_steps = total;
  lc.warmup_steps = warmup;
  lc.lr = lr;
  lc.max_grad_norm = clip;
  lc.val_every = val.samples.empty() || val_batches <= 0 ? 0 : val_every;
  lc.metadata["tokenizer_json"] = tokenizer.to_json();  // the run folder is self-contained
  if (!a.tokenizer.empty()) lc.metadata["tokenizer"] = path_for_run(a.tokenizer, a.out);
  lc.metadata["image_token_id"] = std::to_string(fmt.image_id);
  lc.metadata["llm_checkpoint"] = path_for_run(a.llm, a.out);

  std::vector<int32_t> ids, labels;
  TrainTask task;
  task.micro_step = [&] {
    Tensor feats;
    std::vector<int64_t> rows;
    next_batch(feats, rows);
    caption_batch(train_tok, rows, fmt, ids, labels);
    VlmLoss l = vlm_loss_step(vlm, feats, Tensor::from_i32({B, S}, ids), Tensor::from_i32({B, S}, labels), true);
    StepStats s;
    s.loss = l.loss;
    s.tokens = l.tokens;
    s.metrics = {{"ppl", std::exp(std::min(l.loss, 100.0))}};
    return s;
  };
  task.skip_micro = [&] {
    Tensor feats;
    std::vector<int64_t> rows;
    next_batch(feats, rows);
  };
  task.validate = [&] {
    // The mean of per-batch mean losses over the first vlm_val_batches batches, as the original reports it.
    ImageFeatureStream vs(features, val_img);
    double sum = 0;
    int64_t batches = 0;
    while (batches < val_batches && !vs.done()) {
      std::vector<size_t> used;
      Tensor feats = vs.take(B, used);
      if (used.empty()) break;
      const int64_t n = int64_t(used.size());
      std::vector<int64_t> rows(used.begin(), used.end());
      caption_batch(val_tok, rows, fmt, ids, labels);
      VlmLoss l = vlm_loss_step(vlm, feats, Tensor::from_i32({n, S}, ids), Tensor::from_i32({n, S}, labels), false);
      sum += l.loss;
      ++batches;
    }
    const double loss = batches ? sum / double(batches) : std::nan("");
    return std::map<std::string, double>{{"val_loss", loss}, {"val_ppl", std::exp(std::min(loss, 100.0))}};
  };
  task.data_state = [&] { return pos.str(); };
  task.restore_data_state = [&](const std::string& s) {
    DataPos p = DataPos::parse(s);
    set_epoch(p.epoch);
    pos = p;
  };

  AlignResult r;
  static_cast<TrainResult&>(r) = run_training(params, opt, lc, task);
  r.skipped_samples = pos.skipped;
  r.bad_images = int64_t(features.bad_images().size());
  r.train_samples = n_train;
  r.val_samples = int64_t(val.samples.size());
  r.tower_images = features.tower_images();
  r.cache_hits = cache ? cache->hits() : 0;
  if (dist::rank() != 0) return r;  // rank 0 reports for a data-parallel job
  if (!a.quiet) {
    if (r.has_val)
      std::fprintf(stderr, "align: done, %lld steps (%lld skipped batches); validation loss %.4f -> %.4f (best %.4f)\n",
                   (long long)r.steps_done, (long long)r.skipped_batches, r.first_val, r.last_val, r.best_val);
    else
      std::fprintf(stderr, "align: done, %lld steps (no validation set)\n", (long long)r.steps_done);
    if (cache)
      std::fprintf(stderr, "align: feature cache: %lld images read from it, %lld written; tower ran on %lld images\n",
                   (long long)cache->hits(), (long long)cache->stores(), (long long)features.tower_images());
  }
  std::string bad = features.bad_report();
  if (!bad.empty() && !a.quiet)
    std::fprintf(stderr, "align: %lld samples skipped: %s\n", (long long)r.skipped_samples, bad.c_str());
  return r;
}

}  // namespace tv
