// The decoder against the PyTorch reference (scripts/reference/ref_model.py, fixtures made by
// scripts/fixtures/model_fixtures.py): logits, CE, aux loss and every parameter gradient of one step,
// and the losses of 10 AdamW steps with clipping and the warmup + cosine schedule.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "core/ops.h"
#include "harness/op_test.h"
#include "io/safetensors.h"
#include "model/checkpoint.h"
#include "model/llama.h"
#include "train/optimizer.h"

using namespace tv;
using tvtest::rel_err;

namespace {

const std::string kDir = std::string(TV_FIXTURE_DIR) + "/model/";

double sum_abs(const Tensor& t) {
  double s = 0;
  for (int64_t i = 0; i < t.numel(); ++i) s += std::abs(double(t.data<float>()[i]));
  return s;
}

double scalar(const SafetensorsFile& f, const std::string& name) { return f.get(name, DType::F64).data<double>()[0]; }

struct TinyModel {
  Config cfg = Config::from_file(kDir + "tiny_config.toml");
  ModelConfig mc = ModelConfig::from(cfg);
  ParamStore params;
  Llama model{mc, params};
  ParamStore::LoadReport report;
  TinyModel() { report = params.load(SafetensorsFile(kDir + "tiny_params.safetensors")); }
};

}  // namespace

TEST(LlamaParity, ForwardBackwardMatchesPyTorch) {
  TinyModel t;
  EXPECT_GT(t.report.ignored, 0) << "the original's unused blocks should be present in the file and ignored";
  SafetensorsFile step(kDir + "tiny_step.safetensors");
  const double alpha = std::stod(step.metadata().at("aux_loss_alpha"));
  Tensor ids = step.get("input_ids"), targets = step.get("targets");
  const int64_t B = ids.size(0), S = ids.size(1);

  Tensor logits = t.model.forward(t.model.embed(ids), B, S, false);
  double e_logits = rel_err(logits, step.get("logits").view({B * S, -1}));
  EXPECT_LE(e_logits, 1e-5) << "logits";

  t.params.zero_grad();
  LmLoss l = lm_loss_step(t.model, ids, targets, alpha, true);
  EXPECT_NEAR(l.ce, scalar(step, "ce"), 1e-5 * std::abs(scalar(step, "ce")));
  EXPECT_NEAR(l.aux, scalar(step, "aux"), 1e-5 * std::abs(scalar(step, "aux")));
  EXPECT_NEAR(l.loss, scalar(step, "loss"), 1e-5 * std::abs(scalar(step, "loss")));

  double worst = 0;
  std::string worst_name;
  int checked = 0;
  for (Param& p : t.params.all()) {
    if (!step.has("grad." + p.name)) {
      // PyTorch has no gradient for a parameter the graph never used (temp_scale of RoPE layers).
      EXPECT_NE(p.name.find("temp_scale"), std::string::npos) << "fixture lacks the gradient of " << p.name;
      EXPECT_EQ(sum_abs(*p.grad_or_null()), 0.0) << p.name;
      continue;
    }
    double e = rel_err(*p.grad_or_null(), step.get("grad." + p.name).view(p.value.shape()));
    EXPECT_LE(e, 1e-5) << "gradient of " << p.name;
    if (e > worst) {
      worst = e;
      worst_name = p.name;
    }
    ++checked;
  }
  std::printf("parity: logits rel err %.2e, %d gradients, worst %.2e (%s)\n", e_logits, checked, worst, worst_name.c_str());
}

TEST(LlamaParity, IgnoredTargetsMatchPyTorch) {
  TinyModel t;
  SafetensorsFile step(kDir + "tiny_step.safetensors");
  if (!step.has("targets_ignore")) GTEST_SKIP() << "fixture has no ignore-index case";
  LmLoss l = lm_loss_step(t.model, step.get("input_ids"), step.get("targets_ignore"), 0.0, false);
  EXPECT_NEAR(l.ce, scalar(step, "ce_ignore"), 1e-5 * std::abs(scalar(step, "ce_ignore")));
}

TEST(LlamaParity, MoeRoutingMatchesPyTorch) {
  // Router probabilities and top-k choices of both MoE layers, via the per-layer reference tensors.
  TinyModel t;
  SafetensorsFile step(kDir + "tiny_step.safetensors");
  for (int layer : {1, 3}) ASSERT_TRUE(step.has("moe." + std::to_string(layer) + ".top_idx"));
  // The aux loss of the whole model is the sum of the per-layer losses.
  LmLoss l = lm_loss_step(t.model, step.get("input_ids"), step.get("targets"), 0.0, false);
  EXPECT_NEAR(l.aux, scalar(step, "moe.1.aux") + scalar(step, "moe.3.aux"), 1e-5);
}

TEST(LlamaParity, TenAdamWStepsMatchPyTorch) {
  TinyModel t;
  SafetensorsFile run(kDir + "tiny_train.safetensors");
  const auto& md = run.metadata();
  const double alpha = std::stod(md.at("aux_loss_alpha")), peak = std::stod(md.at("peak_lr"));
  const double clip = std::stod(md.at("max_grad_norm"));
  const int64_t steps = std::stoll(md.at("steps")), warmup = std::stoll(md.at("warmup_steps")),
                total = std::stoll(md.at("total_steps"));
  AdamW opt;
  opt.beta1 = std::stod(md.at("beta1"));
  opt.beta2 = std::stod(md.at("beta2"));
  opt.eps = std::stod(md.at("eps"));
  opt.weight_decay = std::stod(md.at("weight_decay"));
  Tensor ids = run.get("input_ids"), targets = run.get("targets");
  Tensor ref_loss = run.get("loss", DType::F64), ref_norm = run.get("grad_norm", DType::F64), ref_lr = run.get("lr");
  double worst_loss = 0;
  for (int64_t k = 0; k < steps; ++k) {
    t.params.zero_grad();
    LmLoss l = lm_loss_step(t.model, ids.select(k).contiguous(), targets.select(k).contiguous(), alpha, true);
    double norm = ops::clip_grad_norm(t.params.grads(), clip);
    double lr = lr_at(opt.step, warmup, total, peak);
    EXPECT_NEAR(lr, ref_lr.data<double>()[k], 1e-15);
    opt.apply(t.params, lr);
    double e = std::abs(l.loss - ref_loss.data<double>()[k]);
    worst_loss = std::max(worst_loss, e);
    EXPECT_LE(e, 1e-4) << "loss of step " << k;
    EXPECT_NEAR(norm, ref_norm.data<double>()[k], 1e-4 * ref_norm.data<double>()[k]) << "grad norm of step " << k;
  }
  double worst_param = 0;
  for (Param& p : t.params.all()) {
    if (!run.has("param." + p.name)) continue;
    double e = rel_err(p.value, run.get("param." + p.name).view(p.value.shape()));
    worst_param = std::max(worst_param, e);
    EXPECT_LE(e, 1e-4) << p.name;
  }
  std::printf("parity: 10 AdamW steps, worst loss difference %.2e, worst final-parameter rel err %.2e\n", worst_loss,
              worst_param);
}
