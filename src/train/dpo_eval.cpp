// `tinyvlm eval --task dpo`: a policy against a reference on preference pairs, as one JSON object.
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/parallel.h"
#include "data/feature_cache.h"
#include "tokenizer/bpe.h"
#include "train/dpo.h"
#include "train/image_features.h"
#include "train/instruct.h"
#include "train/run_tokenizer.h"

namespace tv {

namespace {

nlohmann::json number_or_null(double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr); }

}  // namespace

std::string DpoEvalReport::summary_json() const {
  nlohmann::json skipped_list = nlohmann::json::array();
  for (const SkippedSample& s : skipped) skipped_list.push_back({{"id", s.id}, {"reason", s.reason}});
  nlohmann::json j = {{"task", "dpo"},
                      {"model", model},
                      {"ref", ref},
                      {"data", data},
                      {"loss_kind", loss},
                      {"beta", beta},
                      {"loss", number_or_null(stats.loss)},
                      {"accuracy", number_or_null(stats.accuracy)},
                      {"chosen_reward", number_or_null(stats.chosen_reward)},
                      {"rejected_reward", number_or_null(stats.rejected_reward)},
                      {"margin", number_or_null(stats.margin)},
                      {"loss_batch_mean", number_or_null(stats.loss_batch_mean)},
                      {"accuracy_batch_mean", number_or_null(stats.accuracy_batch_mean)},
                      {"pairs", stats.pairs},
                      {"batches", stats.batches},
                      {"tokens", stats.tokens},
                      {"records", records},
                      {"skipped", int64_t(skipped.size())},
                      {"skipped_samples", skipped_list}};
  return j.dump();
}

std::vector<std::string> DpoEvalReport::per_sample_json() const {
  std::vector<std::string> out;
  const DpoEvalStats& e = stats;
  for (size_t i = 0; i < e.pair.size(); ++i) {
    const double h = (e.policy.chosen[i] - e.ref.chosen[i]) - (e.policy.rejected[i] - e.ref.rejected[i]);
    out.push_back(nlohmann::json{{"pair", pair_names[size_t(e.pair[i])]},
                                 {"policy_chosen", e.policy.chosen[i]},
                                 {"policy_rejected", e.policy.rejected[i]},
                                 {"ref_chosen", e.ref.chosen[i]},
                                 {"ref_rejected", e.ref.rejected[i]},
                                 {"margin", beta * h}}
                      .dump());
  }
  return out;
}

DpoEvalReport evaluate_dpo(const DpoEvalOptions& a) {
  if (a.threads >= 0) set_num_threads(a.threads);
  if (a.ref.empty()) fail("eval --task dpo: a reference checkpoint is required (--ref; the phase-3 model the policy started from)");
  std::unique_ptr<LoadedVlm> m = load_vlm(a.model, a.config, a.sets);
  std::unique_ptr<LoadedVlm> ref = load_vlm(a.ref, a.config, a.sets);
  const Config& cfg = m->config;
  if (ref->model->tower().fingerprint() != m->model->tower().fingerprint())
    fail(a.ref, ": the reference's vision tower differs from the policy's (", a.model, ")");
  const CheckpointTokenizer ct = require_checkpoint_tokenizer(a.tokenizer, a.model, m->text_config.vocab_size + 1);
  const int64_t B = cfg.get_int("dpo_batch_size", 4);
  if (B <= 0) fail(cfg.source(), ": dpo_batch_size must be positive, got ", B);
  const ConversationFormat f =
      conversation_format(*ct.tokenizer, m->text_config.vocab_size, cfg.get_int("dpo_max_seq_len", 512), ct.name);
  DpoEvalReport rep;
  rep.model = a.model;
  rep.ref = a.ref;
  rep.data = a.data;
  rep.beta = a.beta > 0 ? a.beta : cfg.get_double("dpo_beta", 0.1);
  if (!(rep.beta > 0)) fail("eval --task dpo: beta must be positive");
  const DpoLossKind kind = parse_dpo_loss(a.loss.empty() ? cfg.get_string("dpo_loss", "sigmoid") : a.loss,
                                          a.loss.empty() ? cfg.source() + ": dpo_loss" : std::string("--loss"));
  rep.loss = dpo_loss_name(kind);
  DpoSet set = load_dpo(a.data, a.images);
  rep.records = set.records;
  if (a.max_samples > 0 && int64_t(set.pairs.size()) > a.max_samples) set.pairs.resize(size_t(a.max_samples));
  rep.skipped = set.skipped;
  const DpoTokens tok = tokenize_dpo(*ct.tokenizer, set, f, rep.skipped);
  std::vector<std::string> images;
  for (int64_t k = 0; k < tok.pairs(); ++k) {
    images.push_back(set.pairs[size_t(tok.pair_index(k))].image);
    rep.pair_names.push_back(set.pairs[size_t(tok.pair_index(k))].id);
  }
  std::unique_ptr<FeatureCache> cache = open_feature_cache(a.cache_features, *m->model, cfg);
  ImageFeatureSource features(m->model->tower(), cache.get(), 0, B);
  MatmulPrecisionScope precision(
      parse_matmul_precision(cfg.get_string("matmul_precision", "fp32"), cfg.source() + ": matmul_precision ="));
  rep.stats = evaluate_dpo_pairs(*m->model, ref->model.get(), nullptr, features, tok, images, f, B, -1, kind, rep.beta,
                                 a.per_sample);
  for (const auto& [image, why] : features.bad_images()) rep.skipped.push_back({image, "unreadable image: " + why});
  return rep;
}

}  // namespace tv
