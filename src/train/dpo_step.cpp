#include "train/dpo_step.h"

#include <cmath>

#include "core/error.h"
#include "core/ignore_index.h"

namespace tv {

DpoLossKind parse_dpo_loss(const std::string& name, const std::string& where) {
  if (name == "sigmoid") return DpoLossKind::Sigmoid;
  if (name == "ipo") return DpoLossKind::Ipo;
  if (name == "hinge") return DpoLossKind::Hinge;
  fail(where, ": the DPO loss must be sigmoid, ipo or hinge, got '", name, "'");
}

const char* dpo_loss_name(DpoLossKind k) {
  return k == DpoLossKind::Sigmoid ? "sigmoid" : k == DpoLossKind::Ipo ? "ipo" : "hinge";
}

double dpo_pair_loss(DpoLossKind kind, double beta, double h, double* dloss_dh) {
  switch (kind) {
    case DpoLossKind::Sigmoid: {
      // -logsigmoid(z) = softplus(-z), computed without overflow; d/dz = -sigmoid(-z).
      const double z = beta * h;
      const double loss = z > 0 ? std::log1p(std::exp(-z)) : -z + std::log1p(std::exp(z));
      if (dloss_dh) *dloss_dh = -beta / (1 + std::exp(z));
      return loss;
    }
    case DpoLossKind::Ipo: {
      const double d = h - 1 / (2 * beta);
      if (dloss_dh) *dloss_dh = 2 * d;
      return d * d;
    }
    case DpoLossKind::Hinge: {
      const double z = 1 - beta * h;
      if (dloss_dh) *dloss_dh = z > 0 ? -beta : 0.0;
      return z > 0 ? z : 0.0;
    }
  }
  return 0;
}

DpoBatchStats dpo_stats(DpoLossKind kind, double beta, const DpoLogps& p, const DpoLogps& r) {
  const size_t B = p.chosen.size();
  TV_CHECK(p.rejected.size() == B && r.chosen.size() == B && r.rejected.size() == B, "dpo_stats: mismatched pair counts");
  DpoBatchStats s;
  s.pairs = int64_t(B);
  if (B == 0) {
    s.loss = std::nan("");
    return s;
  }
  for (size_t b = 0; b < B; ++b) {
    const double cr = p.chosen[b] - r.chosen[b], rr = p.rejected[b] - r.rejected[b], h = cr - rr;
    s.loss += dpo_pair_loss(kind, beta, h, nullptr);
    s.accuracy += beta * h > 0 ? 1.0 : 0.0;  // the original: logits_diff = beta * h > 0
    s.chosen_reward += beta * cr;
    s.rejected_reward += beta * rr;
  }
  s.loss /= double(B);
  s.accuracy /= double(B);
  s.chosen_reward /= double(B);
  s.rejected_reward /= double(B);
  s.margin = s.chosen_reward - s.rejected_reward;
  return s;
}

Tensor repeat_pair_features(const Tensor& f) {
  TV_CHECK(f.ndim() == 3, "repeat_pair_features: features should be [B, P, hidden], got ", f.describe());
  const int64_t B = f.size(0);
  Tensor out = Tensor::empty({2 * B, f.size(1), f.size(2)}, f.dtype(), f.device());
  Tensor a = out.narrow(0, 0, B), b = out.narrow(0, B, B);
  a.copy_from(f);
  b.copy_from(f);
  return out;
}

namespace {

// The labelled positions of the assembled 2B x (P + S - 1) sequence, their targets and their row (0..2B-1).
struct LabelledRows {
  std::vector<int32_t> rows, targets, seq;
};

LabelledRows labelled_rows(const Tensor& labels, int64_t P) {
  const int64_t N = labels.size(0), T = P + labels.size(1) - 1;
  Tensor all = vlm_targets(labels, P).to(Device::CPU);
  LabelledRows out;
  for (int64_t i = 0; i < all.numel(); ++i) {
    const int32_t t = all.data<int32_t>()[i];
    if (t == kIgnoreIndex) continue;
    out.rows.push_back(int32_t(i));
    out.targets.push_back(t);
    out.seq.push_back(int32_t(i / T));
  }
  TV_CHECK(int64_t(out.rows.empty() ? 0 : out.seq.back()) < N, "labelled_rows: row out of range");
  return out;
}

DpoLogps split_logps(const std::vector<double>& seq_logp) {
  const size_t B = seq_logp.size() / 2;
  DpoLogps l;
  l.chosen.assign(seq_logp.begin(), seq_logp.begin() + int64_t(B));
  l.rejected.assign(seq_logp.begin() + int64_t(B), seq_logp.end());
  return l;
}

void check_batch(const VisionLanguageModel& m, const Tensor& features2, const Tensor& ids, const Tensor& labels) {
  TV_CHECK(ids.ndim() == 2 && ids.size(0) % 2 == 0 && labels.shape() == ids.shape(),
           "DPO batch: ids and labels should be i32 [2B, S] (chosen rows, then rejected rows), got ", ids.describe(),
           " and ", labels.describe());
  TV_CHECK(features2.ndim() == 3 && features2.size(0) == ids.size(0),
           "DPO batch: features should be [2B, P, hidden], got ", features2.describe());
}

}  // namespace

DpoLogps dpo_sequence_logps(VisionLanguageModel& model, const Tensor& features2, const Tensor& ids,
                            const Tensor& labels, int64_t* tokens) {
  check_batch(model, features2, ids, labels);
  VlmLoss l = vlm_loss_step(model, features2, ids, labels, false);
  std::vector<double> lp(l.seq_sum.size());
  for (size_t i = 0; i < lp.size(); ++i) lp[i] = -l.seq_sum[i];
  if (tokens) *tokens = l.tokens;
  return split_logps(lp);
}

DpoBatchStats dpo_policy_step(VisionLanguageModel& policy, const Tensor& features2, const Tensor& ids,
                              const Tensor& labels, const DpoLogps& ref, DpoLossKind kind, double beta, bool backward,
                              DpoLogps* policy_logps) {
  check_batch(policy, features2, ids, labels);
  const int64_t N = ids.size(0), B = N / 2;
  TV_CHECK(int64_t(ref.chosen.size()) == B && int64_t(ref.rejected.size()) == B, "dpo_policy_step: ", ref.chosen.size(),
           " reference log-probabilities for ", B, " pairs");
  const LabelledRows lr = labelled_rows(labels, policy.num_vision_tokens());
  const int64_t n = int64_t(lr.rows.size());
  TV_CHECK(n > 0, "dpo_policy_step: no labelled token in the batch");
  Tensor rows = Tensor::from_i32({n}, lr.rows).to(ids.device());
  Tensor targets = Tensor::from_i32({n}, lr.targets).to(ids.device());
  // One forward of the 2B rows; the head runs once for the log-probabilities, then (once the loss's
  // weight of every sequence is known) once more with the backward of sum_i weight(seq i) * CE_i.
  Tensor x = policy.forward_hidden(features2, ids, backward, &rows);
  Tensor row_losses;
  policy.llm().head_loss(x, targets, nullptr, &row_losses);
  Tensor hl = row_losses.to(Device::CPU).to(DType::F64);
  std::vector<double> seq_logp(size_t(N), 0.0);
  for (int64_t i = 0; i < n; ++i) seq_logp[size_t(lr.seq[size_t(i)])] -= hl.data<double>()[i];
  DpoLogps p = split_logps(seq_logp);
  DpoBatchStats s = dpo_stats(kind, beta, p, ref);
  s.tokens = n;
  if (policy_logps) *policy_logps = p;
  if (!backward || !std::isfinite(s.loss)) return s;
  // loss = mean_b l(h_b), h_b = (pc_b - rc_b) - (pr_b - rr_b), p = -sum CE: d loss / d CE_i = -+ l'(h_b) / B.
  std::vector<float> seq_w(static_cast<size_t>(N));
  for (int64_t b = 0; b < B; ++b) {
    const double h = (p.chosen[size_t(b)] - ref.chosen[size_t(b)]) - (p.rejected[size_t(b)] - ref.rejected[size_t(b)]);
    double dh = 0;
    dpo_pair_loss(kind, beta, h, &dh);
    seq_w[size_t(b)] = float(-dh / double(B));
    seq_w[size_t(B + b)] = float(dh / double(B));
  }
  std::vector<float> w(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) w[size_t(i)] = seq_w[size_t(lr.seq[size_t(i)])];
  Tensor scale = Tensor::from_f32({n}, w).to(x.device()).to(x.dtype());
  Tensor dx;
  policy.llm().head_loss(x, targets, &dx, nullptr, &scale);
  x = Tensor();
  policy.backward_hidden(dx);
  return s;
}

}  // namespace tv
