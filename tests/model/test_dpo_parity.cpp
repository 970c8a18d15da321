// Phase 4 against the PyTorch reference (tests/fixtures/dpo/dpo_step.safetensors, written by
// scripts/fixtures/dpo_fixtures.py): the summed response log-probabilities of each pair under the policy and
// the reference, the DPO loss and the gradient of every trainable parameter for sigmoid, IPO and hinge, with
// the chosen and rejected sequences as one batch (one forward, one backward, the image features of each pair
// computed once), padded to dpo_max_seq_len as the original pads them and to the longest row.
#include <gtest/gtest.h>

#include <cmath>

#include "harness/op_test.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "model/vlm.h"
#include "train/dpo_step.h"

using namespace tv;
using tvtest::rel_err;

namespace {

const std::string kVlm = std::string(TV_FIXTURE_DIR) + "/vlm/";
const std::string kStep = std::string(TV_FIXTURE_DIR) + "/dpo/dpo_step.safetensors";

struct TinyVlm {
  Config cfg = Config::from_file(kVlm + "tiny_vlm_config.toml");
  ParamStore params;
  VisionLanguageModel vlm{ModelConfig::from(cfg), VisionConfig::from(cfg), params};
  explicit TinyVlm(bool reference) {
    params.load(SafetensorsFile(kVlm + "vlm_params.safetensors"));
    if (reference) {  // the fixture's reference: the policy with three tensors changed
      SafetensorsFile step(kStep);
      for (const std::string& n : step.names())
        if (n.rfind("ref.", 0) == 0) params.find(n.substr(4))->value.copy_from(step.get(n));
      params.set_trainable("", false);
    } else {
      vlm.set_phase3_trainable(params);
    }
  }
};

// [chosen rows; rejected rows], columns [0, S).
std::pair<Tensor, Tensor> pair_batch(const SafetensorsFile& step, int64_t S) {
  std::vector<int32_t> ids, labels;
  for (const char* which : {"chosen", "rejected"}) {
    Tensor i = step.get(std::string(which) + "_ids"), l = step.get(std::string(which) + "_labels");
    for (int64_t b = 0; b < i.size(0); ++b)
      for (int64_t s = 0; s < S; ++s) {
        ids.push_back(i.data<int32_t>()[b * i.size(1) + s]);
        labels.push_back(l.data<int32_t>()[b * i.size(1) + s]);
      }
  }
  const int64_t N = int64_t(ids.size()) / S;
  return {Tensor::from_i32({N, S}, ids), Tensor::from_i32({N, S}, labels)};
}

std::vector<double> f64(const SafetensorsFile& f, const std::string& name) {
  Tensor t = f.get(name, DType::F64);
  return std::vector<double>(t.data<double>(), t.data<double>() + t.numel());
}

void expect_close(const std::vector<double>& got, const std::vector<double>& want, double rel, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_LE(std::abs(got[i] - want[i]), rel * std::abs(want[i])) << what << "[" << i << "]: " << got[i] << " vs " << want[i];
}

int64_t longest(const SafetensorsFile& step) {
  int64_t S = 0;
  for (const char* n : {"lengths_chosen", "lengths_rejected"}) {
    Tensor t = step.get(n);
    for (int64_t i = 0; i < t.numel(); ++i) S = std::max<int64_t>(S, t.data<int32_t>()[i]);
  }
  return S;
}

}  // namespace

TEST(DpoParity, LogProbsLossAndGradientsMatchPyTorch) {
  SafetensorsFile step(kStep);
  const double beta = std::stod(step.metadata().at("beta"));
  const int64_t S_max = step.get("chosen_ids").size(1), S_batch = longest(step);
  ASSERT_LE(S_batch, S_max);
  TinyVlm ref(true);
  Tensor feats = ref.vlm.tower().forward(step.get("pixels"));
  EXPECT_LE(rel_err(feats, step.get("features")), 1e-4);
  const Tensor feats2 = repeat_pair_features(feats);
  const DpoLogps want_ref{f64(step, "ref_chosen"), f64(step, "ref_rejected")};
  const DpoLogps want_policy{f64(step, "policy_chosen"), f64(step, "policy_rejected")};
  std::vector<int64_t> widths = {S_max};
  if (S_batch < S_max) widths.push_back(S_batch);  // padded to the longest row instead
  for (int64_t S : widths) {
    SCOPED_TRACE("padded to " + std::to_string(S));
    auto [ids, labels] = pair_batch(step, S);
    const DpoLogps r = dpo_sequence_logps(ref.vlm, feats2, ids, labels);
    expect_close(r.chosen, want_ref.chosen, 1e-5, "ref chosen");
    expect_close(r.rejected, want_ref.rejected, 1e-5, "ref rejected");
    for (DpoLossKind kind : {DpoLossKind::Sigmoid, DpoLossKind::Ipo, DpoLossKind::Hinge}) {
      const std::string k = dpo_loss_name(kind);
      SCOPED_TRACE(k);
      TinyVlm policy(false);
      policy.params.zero_grad();
      DpoLogps p;
      // The reference's log-probabilities as computed here (what training uses), not the fixture's.
      const DpoBatchStats s = dpo_policy_step(policy.vlm, feats2, ids, labels, r, kind, beta, true, &p);
      expect_close(p.chosen, want_policy.chosen, 1e-5, "policy chosen");
      expect_close(p.rejected, want_policy.rejected, 1e-5, "policy rejected");
      const double want_loss = step.get("loss." + k, DType::F64).data<double>()[0];
      EXPECT_LE(std::abs(s.loss - want_loss), 1e-5 * std::abs(want_loss)) << s.loss << " vs " << want_loss;
      EXPECT_NEAR(s.accuracy, step.get("accuracy." + k, DType::F64).data<double>()[0], 1e-7);  // a share of 3 pairs (float32 there)
      int checked = 0;
      double worst = 0;
      for (Param& prm : policy.params.all()) {
        if (!prm.trainable) {
          EXPECT_FALSE(prm.has_grad) << prm.name;
          continue;
        }
        const std::string g = "grad." + k + "." + prm.name;
        if (!step.has(g)) {  // blocks the original builds but never runs
          EXPECT_TRUE(!prm.has_grad || rel_err(*prm.grad_or_null(), Tensor::zeros(prm.value.shape())) == 0) << prm.name;
          continue;
        }
        ASSERT_TRUE(prm.has_grad) << prm.name;
        const double e = rel_err(*prm.grad_or_null(), step.get(g).view(prm.value.shape()));
        EXPECT_LE(e, 1e-5) << prm.name;
        worst = std::max(worst, e);
        ++checked;
      }
      int want = 0;
      for (const std::string& n : step.names()) want += n.rfind("grad." + k + ".", 0) == 0;
      EXPECT_EQ(checked, want);
      std::printf("dpo parity (%s, S = %lld): loss %.7f vs %.7f, %d gradients, worst rel err %.2e\n", k.c_str(),
                  (long long)S, s.loss, want_loss, checked, worst);
    }
  }
}

// The loss formulas and their derivatives against central differences.
TEST(DpoLoss, DerivativesMatchFiniteDifferences) {
  for (DpoLossKind kind : {DpoLossKind::Sigmoid, DpoLossKind::Ipo, DpoLossKind::Hinge})
    for (double h : {-7.3, -0.4, 0.3, 1.1, 6.0}) {
      double d = 0;
      dpo_pair_loss(kind, 0.5, h, &d);
      const double eps = 1e-6;
      const double fd = (dpo_pair_loss(kind, 0.5, h + eps, nullptr) - dpo_pair_loss(kind, 0.5, h - eps, nullptr)) / (2 * eps);
      EXPECT_NEAR(d, fd, 1e-6) << dpo_loss_name(kind) << " at h = " << h;
    }
  // Large margins neither overflow nor lose the sign of the gradient.
  double d = 0;
  EXPECT_NEAR(dpo_pair_loss(DpoLossKind::Sigmoid, 1.0, -800, &d), 800, 1e-9);
  EXPECT_NEAR(d, -1.0, 1e-12);
  EXPECT_NEAR(dpo_pair_loss(DpoLossKind::Sigmoid, 1.0, 800, &d), 0, 1e-12);
}
