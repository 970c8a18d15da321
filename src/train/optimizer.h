// AdamW over the trainable parameters of a ParamStore, plus the learning-rate schedule of every phase.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "core/ops.h"
#include "core/named_tensor.h"
#include "io/safetensors.h"  // the state files it writes and reads
#include "io/tensor_source.h"
#include "model/params.h"

namespace tv {

// Linear warmup from 0, then cosine decay to 10% of the peak over the remaining steps (docs/spec.md section 7):
// lr(step) = peak * step / warmup for step < warmup, else
// peak * (0.1 + 0.9 * (1 + cos(pi * (step - warmup) / (total - warmup))) / 2). `step` counts applied
// optimizer steps from 0, as PyTorch's LambdaLR does.
double lr_at(int64_t step, int64_t warmup, int64_t total, double peak);

struct AdamW {
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1;
  int64_t step = 0;  // optimizer steps applied so far (drives the schedule)
  std::map<std::string, Tensor> m, v;     // moments by parameter name, created on first use
  std::map<std::string, int64_t> steps;  // per-parameter update count (bias correction), as PyTorch keeps it

  // One update of every trainable parameter that received a gradient this step (Param::has_grad),
  // with the given learning rate.
  // grad_scale: every gradient is used multiplied by it (the clipping coefficient), see ops::AdamWParams.
  void apply(ParamStore& params, double lr, double grad_scale = 1.0);
  // Non-empty: apply() updates only the parameters of this list (the ones this rank owns under ZeRO-1)
  // and keeps moments for them alone.
  std::vector<std::string> only;
  // Moments and counts as named tensors ("adam_m.<name>", "adam_v.<name>", "adam_t.<name>") for the
  // trainer-state file, and back.
  std::vector<NamedTensor> state_tensors() const;
  void load_state(const TensorSource& f, ParamStore& params);  // a state file of any format
};

// Fails, naming `source` and the setting, unless every setting is finite and in range: lr in (0, 10],
// betas in [0, 1), eps in (0, 1), weight decay in [0, 10], max_grad_norm > 0 (no clipping: a huge value).
void check_optimizer_settings(const AdamW& opt, double lr, double max_grad_norm, const std::string& source);

}  // namespace tv
