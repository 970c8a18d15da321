#include "train/evaluate.h"

#include "train/run_tokenizer.h"

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/ignore_index.h"
#include "core/parallel.h"
#include "data/captions.h"
#include "data/feature_cache.h"
#include "tokenizer/bpe.h"
#include "train/image_features.h"
#include "train/instruct.h"
#include "train/run_tokenizer.h"

namespace tv {

EvalStats evaluate_rows(VisionLanguageModel& vlm, ImageFeatureSource& features, const InstructTokens& tok,
                        const std::vector<std::string>& row_images, const ConversationFormat& f, int64_t B,
                        int64_t max_batches, bool per_row) {
  TV_CHECK(int64_t(row_images.size()) == tok.rows(), "evaluate_rows: ", row_images.size(), " images for ", tok.rows(), " rows");
  EvalStats e;
  ImageFeatureStream stream(features, row_images);
  double batch_sum = 0;
  std::vector<int32_t> ids, labels;
  while ((max_batches <= 0 || e.batches < max_batches) && !stream.done()) {
    std::vector<size_t> used;
    int64_t passed = 0;
    Tensor feats = stream.take(B, used, &passed);
    e.unreadable += passed;
    if (used.empty()) break;
    const std::vector<int64_t> rows(used.begin(), used.end());
    const int64_t n = int64_t(rows.size()), S = instruct_batch(tok, rows, f, false, ids, labels);
    VlmLoss l = vlm_loss_step(vlm, feats, Tensor::from_i32({n, S}, ids), Tensor::from_i32({n, S}, labels), false);
    if (l.tokens == 0) continue;  // cannot happen for tokenize_instruct's rows (each has a label)
    e.sum += l.sum;
    e.tokens += l.tokens;
    e.samples += n;
    batch_sum += l.loss;
    ++e.batches;
    if (per_row)
      for (int64_t i = 0; i < n; ++i) e.rows.push_back({rows[size_t(i)], l.seq_sum[size_t(i)], l.seq_tokens[size_t(i)]});
  }
  e.token_mean = e.tokens ? e.sum / double(e.tokens) : std::nan("");
  e.batch_mean = e.batches ? batch_sum / double(e.batches) : std::nan("");
  return e;
}

namespace {

nlohmann::json number_or_null(double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr); }

}  // namespace

std::string EvalReport::summary_json() const {
  nlohmann::json skipped_list = nlohmann::json::array();
  for (const SkippedSample& s : skipped) skipped_list.push_back({{"id", s.id}, {"reason", s.reason}});
  nlohmann::json j = {{"task", task},
                      {"model", model},
                      {"data", data},
                      {"loss", number_or_null(stats.token_mean)},
                      {"loss_batch_mean", number_or_null(stats.batch_mean)},
                      {"ppl", number_or_null(std::exp(std::min(stats.token_mean, 100.0)))},
                      {"tokens", stats.tokens},
                      {"samples", stats.samples},
                      {"batches", stats.batches},
                      {"records", records},
                      {"skipped", int64_t(skipped.size())},
                      {"skipped_samples", skipped_list}};
  return j.dump();
}

std::vector<std::string> EvalReport::per_sample_json() const {
  std::vector<std::string> out;
  for (const RowLoss& r : stats.rows)
    out.push_back(nlohmann::json{{"sample", row_names[size_t(r.row)]},
                                 {"tokens", r.tokens},
                                 {"loss", number_or_null(r.tokens ? r.sum / double(r.tokens) : std::nan(""))},
                                 {"sum", r.sum}}
                      .dump());
  return out;
}

EvalReport evaluate(const EvalOptions& a) {
  if (a.threads >= 0) set_num_threads(a.threads);
  if (a.task != "instruct" && a.task != "captions")
    fail("eval: --task must be 'captions' (phase 2) or 'instruct' (phase 3), got '", a.task, "'");
  std::unique_ptr<LoadedVlm> m = load_vlm(a.model, a.config, a.sets);
  const Config& cfg = m->config;
  const CheckpointTokenizer ct = require_checkpoint_tokenizer(a.tokenizer, a.model, m->text_config.vocab_size + 1);
  const tok::Tokenizer& tokenizer = *ct.tokenizer;
  EvalReport rep;
  rep.task = a.task;
  rep.model = a.model;
  rep.data = a.data;
  InstructTokens tok;
  std::vector<std::string> images;
  ConversationFormat f;
  int64_t B = 0;
  if (a.task == "instruct") {
    B = cfg.get_int("instruct_batch_size", 8);
    f = conversation_format(tokenizer, m->text_config.vocab_size, cfg.get_int("instruct_max_seq_len", 512), ct.name);
    InstructLoadOptions lo;
    lo.coco_only = !a.all_images && cfg.get_bool("instruct_coco_only", true);
    InstructSet set = load_instruct(a.data, a.images, lo);
    rep.records = set.records;
    if (a.max_samples > 0 && int64_t(set.samples.size()) > a.max_samples) set.samples.resize(size_t(a.max_samples));
    rep.skipped = set.skipped;
    tok = tokenize_instruct(tokenizer, set, f, rep.skipped);
    for (int64_t i : tok.sample) {
      images.push_back(set.samples[size_t(i)].image);
      rep.row_names.push_back(set.samples[size_t(i)].id);
    }
  } else {
    B = cfg.get_int("vlm_batch_size", 8);
    const CaptionFormat cf = caption_format(tokenizer, m->text_config.vocab_size, cfg.get_int("vlm_max_seq_len", 64), ct.name);
    f.image_id = cf.image_id;
    f.eos_id = cf.eos_id;
    f.pad_id = cf.pad_id;
    f.max_seq_len = cf.max_seq_len;
    CaptionSet set = load_captions(a.data, a.images);
    rep.records = int64_t(set.samples.size());
    if (a.max_samples > 0 && int64_t(set.samples.size()) > a.max_samples) set.samples.resize(size_t(a.max_samples));
    const CaptionTokens ct = tokenize_captions(tokenizer, set, cf);
    // Phase-2 labels: the ids, with <image> (position 0) and every pad id ignored (the original masks by value).
    tok.ids = ct.ids;
    tok.labels = ct.ids;
    tok.offsets = ct.offsets;
    std::vector<int> seen(set.images.size(), 0);
    for (int64_t r = 0; r < ct.rows(); ++r) {
      const int64_t a0 = ct.offsets[size_t(r)], a1 = ct.offsets[size_t(r) + 1];
      for (int64_t t = a0; t < a1; ++t)
        if (t == a0 || tok.ids[size_t(t)] == cf.pad_id) tok.labels[size_t(t)] = kIgnoreIndex;
      tok.sample.push_back(r);
      const int32_t im = set.samples[size_t(r)].image;
      images.push_back(set.images[size_t(im)]);
      rep.row_names.push_back(set.images[size_t(im)] + "#" + std::to_string(seen[size_t(im)]++));
    }
  }
  if (B <= 0) fail(cfg.source(), ": the batch size must be positive, got ", B);
  std::unique_ptr<FeatureCache> cache = open_feature_cache(a.cache_features, *m->model, cfg);
  ImageFeatureSource features(m->model->tower(), cache.get(), 0, B);
  MatmulPrecisionScope precision(
      parse_matmul_precision(cfg.get_string("matmul_precision", "fp32"), cfg.source() + ": matmul_precision ="));
  rep.stats = evaluate_rows(*m->model, features, tok, images, f, B, -1, a.per_sample);
  for (const auto& [image, why] : features.bad_images()) rep.skipped.push_back({image, "unreadable image: " + why});
  return rep;
}

}  // namespace tv
