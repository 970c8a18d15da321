#include "train/dpo.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/parallel.h"
#include "data/feature_cache.h"
#include "dist/comm.h"
#include "io/atomic_file.h"
#include "io/run_dir.h"
#include "io/safetensors.h"
#include "model/weight_format.h"
#include "tokenizer/bpe.h"
#include "train/dpo_batches.h"
#include "train/image_features.h"
#include "train/instruct.h"
#include "train/run_tokenizer.h"

namespace tv {
namespace fs = std::filesystem;

namespace {

DpoLogps gather_logps(const DpoLogps& all, const std::vector<int64_t>& pairs) {
  DpoLogps out;
  for (int64_t k : pairs) {
    out.chosen.push_back(all.chosen[size_t(k)]);
    out.rejected.push_back(all.rejected[size_t(k)]);
  }
  return out;
}

std::vector<std::string> pair_images(const DpoTokens& t, const DpoSet& s) {
  std::vector<std::string> out;
  for (int64_t k = 0; k < t.pairs(); ++k) out.push_back(s.pairs[size_t(t.pair_index(k))].image);
  return out;
}

void write_skipped(const std::string& path, const std::vector<SkippedSample>& skipped) {
  std::string text;
  for (const SkippedSample& s : skipped) text += s.id + "\t" + s.reason + "\n";
  write_file_atomic(path, text);
}

// FNV-1a, for the key that ties precomputed log-probabilities to what they were computed from.
struct Fnv {
  uint64_t h = 0xcbf29ce484222325ull;
  void add(const void* p, size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001b3ull;
  }
  void add(const std::string& s) {
    add(s.data(), s.size());
    add("\0", 1);
  }
  template <class T>
  void add_vec(const std::vector<T>& v) {
    const uint64_t n = v.size();
    add(&n, sizeof n);
    add(v.data(), v.size() * sizeof(T));
  }
};

std::string hex(uint64_t h) {
  char buf[20];
  std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)h);
  return buf;
}

// What precomputed reference log-probabilities depend on: the sequences, the images, the reference's weights
// and the matmul precision.
std::string ref_key(const ParamStore& ref_params, const DpoTokens& train, const std::vector<std::string>& train_img,
                    const DpoTokens& val, const std::vector<std::string>& val_img, const std::string& precision) {
  Fnv f;
  f.add(precision);
  for (const DpoTokens* t : {&train, &val}) {
    f.add_vec(t->rows.ids);
    f.add_vec(t->rows.labels);
    f.add_vec(t->rows.offsets);
  }
  for (const auto* v : {&train_img, &val_img})
    for (const std::string& s : *v) f.add(s);
  for (const NamedTensor& p : ref_params.named_values()) {
    f.add(p.name);
    Tensor c = p.tensor.to(Device::CPU).contiguous();
    f.add(c.data<float>(), size_t(c.numel()) * dtype_size(c.dtype()));
  }
  return hex(f.h);
}

// One split's precomputed log-probabilities and how many of its pairs are done.
struct RefSplit {
  DpoLogps logps;
  int64_t done = 0;
};

Tensor f64_tensor(const std::vector<double>& v) {
  Tensor t = Tensor::empty({int64_t(v.size())}, DType::F64);
  std::copy(v.begin(), v.end(), t.data<double>());
  return t;
}

std::vector<double> f64_values(const SafetensorsFile& f, const std::string& name, int64_t n, const std::string& path) {
  if (!f.has(name)) fail(path, ": no tensor ", name);
  Tensor t = f.get(name, DType::F64);
  if (t.numel() != n) fail(path, ": ", name, " has ", t.numel(), " values for ", n, " pairs");
  return std::vector<double>(t.data<double>(), t.data<double>() + n);
}

void save_ref_file(const std::string& path, const std::string& key, const RefSplit& train, const RefSplit& val) {
  save_safetensors(path,
                   {{"train.chosen", f64_tensor(train.logps.chosen)}, {"train.rejected", f64_tensor(train.logps.rejected)},
                    {"val.chosen", f64_tensor(val.logps.chosen)}, {"val.rejected", f64_tensor(val.logps.rejected)}},
                   {{"format", "tinyvlm-dpo-ref-logps"}, {"key", key}, {"train_done", std::to_string(train.done)},
                    {"val_done", std::to_string(val.done)}});
}

// Continues split `s` from s.done: the reference forward over its remaining pairs, B at a time; the file is
// rewritten (atomically) at least every 30 s so that an interrupted precompute resumes where it stopped.
void precompute_split(VisionLanguageModel& ref, ImageFeatureSource& features, const DpoTokens& tok,
                      const std::vector<std::string>& images, const ConversationFormat& f, int64_t B, RefSplit& s,
                      const std::function<void()>& save, const char* what, bool quiet, int64_t& computed) {
  using clock = std::chrono::steady_clock;
  const int64_t n = tok.pairs();
  if (s.done >= n) return;
  std::vector<std::string> plan(images.begin() + s.done, images.end());
  ImageFeatureStream stream(features, plan);
  const int64_t start = s.done;
  auto t_saved = clock::now(), t0 = clock::now(), t_line = clock::now();
  const bool tty = isatty(fileno(stderr));
  std::vector<int32_t> ids, labels;
  while (!stream.done()) {
    std::vector<size_t> used;
    Tensor feats = stream.take(B, used, nullptr);
    const int64_t done = start + int64_t(stream.position());
    if (!used.empty()) {
      std::vector<int64_t> pairs;
      for (size_t u : used) pairs.push_back(start + int64_t(u));
      const int64_t m = int64_t(pairs.size());
      const int64_t S = dpo_batch_rows(tok, pairs, f, ids, labels);
      DpoLogps l = dpo_sequence_logps(ref, repeat_pair_features(feats), Tensor::from_i32({2 * m, S}, ids),
                                      Tensor::from_i32({2 * m, S}, labels));
      for (int64_t i = 0; i < m; ++i) {
        s.logps.chosen[size_t(pairs[size_t(i)])] = l.chosen[size_t(i)];
        s.logps.rejected[size_t(pairs[size_t(i)])] = l.rejected[size_t(i)];
      }
      computed += m;
    }
    s.done = done;
    // A progress line rewritten in place on a terminal; in a log, one line every 10 s and at the end.
    if (!quiet && (tty || s.done == n || std::chrono::duration<double>(clock::now() - t_line).count() >= 10)) {
      const double dt = std::chrono::duration<double>(clock::now() - t0).count();
      std::fprintf(stderr, "%sdpo: reference log-probs, %s pairs %lld/%lld (%.1f pairs/s)%s", tty ? "\r\033[K" : "", what,
                   (long long)s.done, (long long)n, dt > 0 ? double(s.done - start) / dt : 0.0, tty ? "" : "\n");
      std::fflush(stderr);
      t_line = clock::now();
    }
    if (std::chrono::duration<double>(clock::now() - t_saved).count() >= 30) {
      save();
      t_saved = clock::now();
    }
  }
  if (!quiet && tty) std::fprintf(stderr, "\n");
}

}  // namespace

DpoLogps reference_logps(VisionLanguageModel& ref, ImageFeatureSource& features, const DpoTokens& tok,
                         const std::vector<std::string>& images, const ConversationFormat& f, int64_t B) {
  RefSplit s;
  s.logps.chosen.assign(size_t(tok.pairs()), std::nan(""));
  s.logps.rejected = s.logps.chosen;
  int64_t computed = 0;
  precompute_split(ref, features, tok, images, f, B, s, [] {}, "", true, computed);
  return s.logps;
}

DpoEvalStats evaluate_dpo_pairs(VisionLanguageModel& policy, VisionLanguageModel* ref, const DpoLogps* ref_logps,
                                ImageFeatureSource& features, const DpoTokens& tok, const std::vector<std::string>& images,
                                const ConversationFormat& f, int64_t B, int64_t max_batches, DpoLossKind kind,
                                double beta, bool per_pair) {
  TV_CHECK(ref || ref_logps, "evaluate_dpo_pairs: no reference");
  TV_CHECK(int64_t(images.size()) == tok.pairs(), "evaluate_dpo_pairs: ", images.size(), " images for ", tok.pairs(), " pairs");
  DpoEvalStats e;
  ImageFeatureStream stream(features, images);
  std::vector<int32_t> ids, labels;
  double loss_sum = 0, acc_sum = 0, cr_sum = 0, rr_sum = 0;
  while ((max_batches <= 0 || e.batches < max_batches) && !stream.done()) {
    std::vector<size_t> used;
    int64_t passed = 0;
    Tensor feats = stream.take(B, used, &passed);
    e.unreadable += passed;
    if (used.empty()) break;
    const std::vector<int64_t> pairs(used.begin(), used.end());
    const int64_t m = int64_t(pairs.size()), S = dpo_batch_rows(tok, pairs, f, ids, labels);
    const Tensor f2 = repeat_pair_features(feats);
    const Tensor ti = Tensor::from_i32({2 * m, S}, ids), tl = Tensor::from_i32({2 * m, S}, labels);
    const DpoLogps r = ref ? dpo_sequence_logps(*ref, f2, ti, tl) : gather_logps(*ref_logps, pairs);
    DpoLogps p;
    const DpoBatchStats s = dpo_policy_step(policy, f2, ti, tl, r, kind, beta, false, &p);
    loss_sum += s.loss * double(m);
    acc_sum += s.accuracy * double(m);
    cr_sum += s.chosen_reward * double(m);
    rr_sum += s.rejected_reward * double(m);
    e.loss_batch_mean += s.loss;
    e.accuracy_batch_mean += s.accuracy;
    e.pairs += m;
    e.tokens += s.tokens;
    ++e.batches;
    if (per_pair) {
      e.pair.insert(e.pair.end(), pairs.begin(), pairs.end());
      for (int64_t i = 0; i < m; ++i) {
        e.policy.chosen.push_back(p.chosen[size_t(i)]);
        e.policy.rejected.push_back(p.rejected[size_t(i)]);
        e.ref.chosen.push_back(r.chosen[size_t(i)]);
        e.ref.rejected.push_back(r.rejected[size_t(i)]);
      }
    }
  }
  const double np = double(e.pairs), nb = double(e.batches);
  e.loss = e.pairs ? loss_sum / np : std::nan("");
  e.accuracy = e.pairs ? acc_sum / np : std::nan("");
  e.chosen_reward = e.pairs ? cr_sum / np : std::nan("");
  e.rejected_reward = e.pairs ? rr_sum / np : std::nan("");
  e.margin = e.chosen_reward - e.rejected_reward;
  e.loss_batch_mean = e.batches ? e.loss_batch_mean / nb : std::nan("");
  e.accuracy_batch_mean = e.batches ? e.accuracy_batch_mean / nb : std::nan("");
  return e;
}

namespace {

struct DpoSettings {
  int64_t B = 4, S = 512, epochs = 1, batches_per_epoch = -1, val_batches = 200;
  double lr = 5e-6, wd = 0.01, clip = 1.0, beta = 0.1;
  DpoLossKind kind = DpoLossKind::Sigmoid;
};

DpoSettings read_settings(const Config& cfg, const std::string& loss, double beta) {
  const std::string src = cfg.source();
  DpoSettings s;
  // The original's defaults (preference_tuning/run.py), read from the dpo_* keys.
  s.B = cfg.get_int("dpo_batch_size", 4);
  s.S = cfg.get_int("dpo_max_seq_len", 512);
  s.epochs = cfg.get_int("dpo_epochs", 1);
  s.batches_per_epoch = cfg.get_int("dpo_batches_per_epoch", -1);
  s.lr = cfg.get_double("dpo_learning_rate", 5e-6);
  s.wd = cfg.get_double("dpo_weight_decay", 0.01);
  s.clip = cfg.get_double("dpo_max_grad_norm", 1.0);  // the original clips at 1.0
  s.val_batches = cfg.get_int("dpo_val_batches", 200);
  s.beta = beta > 0 ? beta : cfg.get_double("dpo_beta", 0.1);
  s.kind = parse_dpo_loss(loss.empty() ? cfg.get_string("dpo_loss", "sigmoid") : loss,
                          loss.empty() ? src + ": dpo_loss" : std::string("--loss"));
  if (s.B <= 0) fail(src, ": dpo_batch_size must be positive, got ", s.B);
  if (s.S < 3) fail(src, ": dpo_max_seq_len must be at least 3, got ", s.S);
  if (!(s.lr > 0)) fail(src, ": dpo_learning_rate must be positive");
  if (!(s.wd >= 0)) fail(src, ": dpo_weight_decay must be >= 0");
  if (!(s.clip > 0)) fail(src, ": dpo_max_grad_norm must be positive");
  if (!(s.beta > 0) || !std::isfinite(s.beta)) fail(beta > 0 ? std::string("--beta") : src + ": dpo_beta", " must be positive");
  return s;
}

}  // namespace

DpoResult dpo(const DpoOptions& a) {
  if (a.threads >= 0) set_num_threads(a.threads);
  if (a.model.empty()) fail("dpo: a phase-3 checkpoint is required (--model)");
  if (a.data.empty()) fail("dpo: a preference data file is required (--data)");
  if (a.out.empty()) fail("dpo: an output folder is required (--out)");
  if (!a.resume && !a.overwrite && holds_run(a.out))  // refuse before the (long) reference precompute
    fail(a.out, " already holds a run; pass --resume to continue it, or --overwrite to move it aside and start over");
  std::unique_ptr<LoadedVlm> m = load_vlm(a.model, a.config, a.sets);
  require_trainable_weights(m->model->llm(), a.model);
  const Config& cfg = m->config;
  VisionLanguageModel& vlm = *m->model;
  const std::string src = cfg.source();
  const DpoSettings st = read_settings(cfg, a.loss, a.beta);
  const double val_fraction = cfg.get_double("dpo_val_fraction", 0.05);
  const uint64_t split_seed = uint64_t(cfg.get_int("dpo_split_seed", 42));
  const bool precompute = a.precompute_ref || cfg.get_bool("dpo_precompute_ref", false);
  if (st.epochs <= 0 && a.steps <= 0) fail(src, ": dpo_epochs must be positive");
  if (!(val_fraction >= 0 && val_fraction < 1)) fail(src, ": dpo_val_fraction must be in [0, 1)");
  DpoBatchOptions bo;
  bo.batch = st.B;
  bo.batches_per_epoch = st.batches_per_epoch;
  bo.shuffle = cfg.get_bool("dpo_shuffle", true);
  bo.seed = uint64_t(cfg.get_int("seed", 313));

  const CheckpointTokenizer ct = require_checkpoint_tokenizer(a.tokenizer, a.model, m->text_config.vocab_size + 1);
  const tok::Tokenizer& tokenizer = *ct.tokenizer;
  ConversationFormat fmt = conversation_format(tokenizer, m->text_config.vocab_size, st.S, ct.name);

  // Data.
  DpoSet train, val;
  DpoResult r;
  {
    DpoSet all = load_dpo(a.data, a.images);
    if (!a.val_data.empty()) {
      train = std::move(all);
      val = load_dpo(a.val_data, a.val_images.empty() ? a.images : a.val_images);
      train.skipped.insert(train.skipped.end(), val.skipped.begin(), val.skipped.end());
    } else {
      split_dpo(all, val_fraction, split_seed, train, val);
    }
  }
  std::vector<SkippedSample> skipped = train.skipped;
  const DpoTokens train_tok = tokenize_dpo(tokenizer, train, fmt, skipped);
  const DpoTokens val_tok = tokenize_dpo(tokenizer, val, fmt, skipped);
  if (train_tok.pairs() < st.B)
    fail(a.data, ": ", train_tok.pairs(), " usable preference pairs, fewer than one batch (dpo_batch_size = ", st.B, ")\n",
         skipped_report(skipped));
  const std::vector<std::string> train_img = pair_images(train_tok, train), val_img = pair_images(val_tok, val);

  // Model: the policy trains the projector and the decoder; the tower stays frozen.
  vlm.set_phase3_trainable(m->params);
  std::unique_ptr<FeatureCache> cache = open_feature_cache(a.cache_features, vlm, cfg);
  ImageFeatureSource features(vlm.tower(), cache.get(), int(cfg.get_int("dpo_image_workers", 0)), st.B);
  const std::string precision = cfg.get_string("matmul_precision", "fp32");
  const MatmulPrecision mp = parse_matmul_precision(precision, src + ": matmul_precision =");

  // The reference: a frozen copy (forward only, no gradient memory), or its log-probabilities once.
  std::unique_ptr<LoadedVlm> ref_model;
  auto load_reference = [&] {
    ref_model = load_vlm(a.ref.empty() ? a.model : a.ref, a.config, a.sets);
    if (ref_model->model->tower().fingerprint() != vlm.tower().fingerprint())
      fail(a.ref, ": the reference's vision tower differs from the policy's (", a.model,
           "); DPO computes each image's features once, for both (use a reference from the same phase-2 tower)");
    if (ref_model->params.count() != m->params.count())
      fail(a.ref, ": the reference's shape differs from the policy's (", ref_model->params.count(), " vs ",
           m->params.count(), " parameters)");
  };
  DpoLogps ref_train, ref_val;
  if (precompute) {
    r.ref_precomputed = true;
    // Without --ref the reference is the phase-3 checkpoint, which the policy still is before its first step
    // (a resumed run loads its trained weights only once training starts): no second model at all.
    if (!a.ref.empty()) load_reference();
    VisionLanguageModel& ref = ref_model ? *ref_model->model : vlm;
    const std::string key = ref_key(ref_model ? ref_model->params : m->params, train_tok, train_img, val_tok, val_img, precision);
    const fs::path dir = fs::path(a.out) / "reference";
    fs::create_directories(dir);
    r.ref_logps = (dir / "ref_logps.safetensors").string();
    RefSplit rs_train, rs_val;
    rs_train.logps.chosen.assign(size_t(train_tok.pairs()), std::nan(""));
    rs_train.logps.rejected = rs_train.logps.chosen;
    rs_val.logps.chosen.assign(size_t(val_tok.pairs()), std::nan(""));
    rs_val.logps.rejected = rs_val.logps.chosen;
    if (fs::exists(r.ref_logps)) {
      SafetensorsFile f(r.ref_logps);
      const auto& md = f.metadata();
      const bool same = md.count("format") && md.at("format") == "tinyvlm-dpo-ref-logps" && md.count("key") &&
                        md.at("key") == key;
      if (same) {
        rs_train.done = std::stoll(md.at("train_done"));
        rs_val.done = std::stoll(md.at("val_done"));
        rs_train.logps.chosen = f64_values(f, "train.chosen", train_tok.pairs(), r.ref_logps);
        rs_train.logps.rejected = f64_values(f, "train.rejected", train_tok.pairs(), r.ref_logps);
        rs_val.logps.chosen = f64_values(f, "val.chosen", val_tok.pairs(), r.ref_logps);
        rs_val.logps.rejected = f64_values(f, "val.rejected", val_tok.pairs(), r.ref_logps);
        if (rs_train.done < 0 || rs_train.done > train_tok.pairs() || rs_val.done < 0 || rs_val.done > val_tok.pairs())
          fail(r.ref_logps, ": its progress counts are out of range");
        if (!a.quiet)
          std::fprintf(stderr, "dpo: reference log-probs from %s (%lld/%lld training, %lld/%lld validation pairs done)\n",
                       r.ref_logps.c_str(), (long long)rs_train.done, (long long)train_tok.pairs(), (long long)rs_val.done,
                       (long long)val_tok.pairs());
      } else if (a.resume) {
        fail(r.ref_logps, ": computed from other data, another reference or other settings than this run's; "
             "--resume needs the same ones (or remove the file to compute it again)");
      } else if (!a.quiet) {
        std::fprintf(stderr, "dpo: %s was computed from other data or another reference: computing it again\n",
                     r.ref_logps.c_str());
      }
    }
    MatmulPrecisionScope scope(mp);
    auto save = [&] { save_ref_file(r.ref_logps, key, rs_train, rs_val); };
    precompute_split(ref, features, train_tok, train_img, fmt, st.B, rs_train, save, "training", a.quiet, r.ref_pairs_computed);
    precompute_split(ref, features, val_tok, val_img, fmt, st.B, rs_val, save, "validation", a.quiet, r.ref_pairs_computed);
    if (r.ref_pairs_computed > 0 || !fs::exists(r.ref_logps)) save();
    ref_train = std::move(rs_train.logps);
    ref_val = std::move(rs_val.logps);
    ref_model.reset();  // training holds one model
  } else {
    load_reference();
  }
  VisionLanguageModel* live_ref = ref_model ? ref_model->model.get() : nullptr;

  DpoBatches batches(train_tok, train_img, fmt, features, bo);
  const int64_t accum = std::max<int64_t>(1, cfg.get_int("dpo_grad_accum", 1));
  const int64_t steps_per_epoch = std::max<int64_t>(1, batches.steps_per_epoch() / accum);
  const int64_t total = a.steps > 0 ? a.steps : st.epochs * steps_per_epoch;
  const int64_t warmup = cfg.get_int("dpo_warmup_steps", 100);
  const int64_t val_every = cfg.get_int("dpo_val_every", std::min(steps_per_epoch, total));
  if (warmup < 0) fail(src, ": dpo_warmup_steps must be >= 0");
  if (val_every < 0) fail(src, ": dpo_val_every must be >= 0");

  if (!a.quiet) {
    std::fprintf(stderr, "dpo: %lld training pairs, %lld validation; %lld truncated to %lld tokens; batch %lld pairs "
                         "(%lld sequences, one forward and backward)\n",
                 (long long)train_tok.pairs(), (long long)val_tok.pairs(),
                 (long long)(train_tok.rows.truncated + val_tok.rows.truncated), (long long)st.S, (long long)st.B,
                 (long long)(2 * st.B));
    std::fprintf(stderr, "dpo: %s loss, beta %g; reference %s; %.2fM trainable of %.2fM parameters (tower frozen); "
                         "%lld steps (%lld per epoch), warmup %lld, lr %g; %d threads\n",
                 dpo_loss_name(st.kind), st.beta,
                 precompute ? "precomputed" : a.ref.empty() ? "a frozen copy of --model" : a.ref.c_str(),
                 double(m->params.count(true)) / 1e6, double(m->params.count()) / 1e6, (long long)total,
                 (long long)steps_per_epoch, (long long)warmup, st.lr, num_threads());
  }

  AdamW opt;
  opt.weight_decay = st.wd;
  TrainLoopConfig lc = loop_config("dpo", a, cfg, "dpo_");
  lc.total_steps = total;
  lc.warmup_steps = warmup;
  lc.lr = st.lr;
  lc.max_grad_norm = st.clip;
  lc.val_every = val_tok.pairs() == 0 || st.val_batches <= 0 ? 0 : val_every;
  lc.best_metric = "val_accuracy";  // as the original keeps best_dpo.pt
  lc.higher_is_better = true;
  lc.metadata["tokenizer_json"] = tokenizer.to_json();
  if (!a.tokenizer.empty()) lc.metadata["tokenizer"] = path_for_run(a.tokenizer, a.out);
  lc.metadata["image_token_id"] = std::to_string(fmt.image_id);
  lc.metadata["instruct_checkpoint"] = path_for_run(a.model, a.out);
  lc.metadata["dpo_loss"] = dpo_loss_name(st.kind);
  lc.metadata["dpo_beta"] = std::to_string(st.beta);

  DpoBatch batch;
  TrainTask task;
  task.micro_step = [&] {
    batches.next(batch);
    const Tensor ids = Tensor::from_i32({2 * batch.B, batch.S}, batch.ids);
    const Tensor labels = Tensor::from_i32({2 * batch.B, batch.S}, batch.labels);
    const DpoLogps ref = live_ref ? dpo_sequence_logps(*live_ref, batch.features, ids, labels)
                                  : gather_logps(ref_train, batch.pairs);
    const DpoBatchStats s = dpo_policy_step(vlm, batch.features, ids, labels, ref, st.kind, st.beta, true);
    StepStats out;
    out.loss = s.loss;
    out.tokens = s.tokens;
    out.metrics = {{"accuracy", s.accuracy},
                   {"chosen_reward", s.chosen_reward},
                   {"rejected_reward", s.rejected_reward},
                   {"margin", s.margin}};
    return out;
  };
  task.skip_micro = [&] { batches.next(batch); };
  bool first_validation = true;
  task.validate = [&] {
    DpoEvalStats e = evaluate_dpo_pairs(vlm, live_ref, live_ref ? nullptr : &ref_val, features, val_tok, val_img, fmt,
                                        st.B, st.val_batches, st.kind, st.beta);
    if (first_validation) r.val_before = e;
    first_validation = false;
    r.val_after = e;
    // The original's validate(): means of the per-batch loss and accuracy.
    return std::map<std::string, double>{{"val_loss", e.loss_batch_mean},
                                         {"val_accuracy", e.accuracy_batch_mean},
                                         {"val_chosen_reward", e.chosen_reward},
                                         {"val_rejected_reward", e.rejected_reward},
                                         {"val_margin", e.margin}};
  };
  task.data_state = [&] { return batches.state(); };
  task.restore_data_state = [&](const std::string& s) { batches.restore(s); };

  static_cast<TrainResult&>(r) = run_training(m->params, opt, lc, task);
  for (const auto& [image, why] : features.bad_images()) skipped.push_back({image, "unreadable image: " + why});
  r.skipped = skipped;
  r.train_pairs = train_tok.pairs();
  r.val_pairs = val_tok.pairs();
  r.truncated = train_tok.rows.truncated + val_tok.rows.truncated;
  if (dist::rank() != 0) return r;
  if (!skipped.empty()) write_skipped((fs::path(a.out) / "skipped_samples.tsv").string(), skipped);
  if (!a.quiet) {
    if (r.has_val)
      std::fprintf(stderr, "dpo: done, %lld steps (%lld skipped batches); validation accuracy %.4f -> %.4f (best %.4f)\n",
                   (long long)r.steps_done, (long long)r.skipped_batches, r.first_val, r.last_val,
                   r.best_val);
    else
      std::fprintf(stderr, "dpo: done, %lld steps (no validation set)\n", (long long)r.steps_done);
    if (!skipped.empty())
      std::fprintf(stderr, "dpo: %s; the full list is in %s\n", skipped_report(skipped).c_str(),
                   (fs::path(a.out) / "skipped_samples.tsv").c_str());
  }
  return r;
}

}  // namespace tv
