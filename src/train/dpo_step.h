// The DPO objective of phase 4 (docs/spec.md section 7) on one batch of preference pairs: summed response
// log-probabilities of the chosen and rejected sequences under the policy and the reference, the loss and,
// for the policy, its gradient. The chosen and rejected sequences of the B pairs run as one batch of 2B rows
// (rows 0..B-1 chosen, B..2B-1 rejected) through one forward and one backward, over the image features of
// each pair computed once; the reference runs forward only. Log-probabilities come from the decoder's one
// output layer and loss (Llama::head_loss, per row), summed per sequence.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/vlm.h"

namespace tv {

enum class DpoLossKind { Sigmoid, Ipo, Hinge };
DpoLossKind parse_dpo_loss(const std::string& name, const std::string& where);  // sigmoid | ipo | hinge
const char* dpo_loss_name(DpoLossKind k);

// h = (pc - rc) - (pr - rr), the difference of the chosen and rejected log-ratios. Per pair:
//   sigmoid (DPO, the original): -logsigmoid(beta * h)
//   ipo (IPO, on summed log-probs): (h - 1 / (2 beta))^2
//   hinge (SLiC):                   max(0, 1 - beta * h)
// Returns the loss of one pair and sets dloss_dh.
double dpo_pair_loss(DpoLossKind kind, double beta, double h, double* dloss_dh);

struct DpoLogps {
  std::vector<double> chosen, rejected;  // per pair, summed log-probabilities of the response and EOS
};

// The mean over the pairs of the loss and the original's metrics (rewards are beta * log-ratio).
struct DpoBatchStats {
  double loss = 0, accuracy = 0, chosen_reward = 0, rejected_reward = 0, margin = 0;
  int64_t pairs = 0, tokens = 0;
};
DpoBatchStats dpo_stats(DpoLossKind kind, double beta, const DpoLogps& policy, const DpoLogps& ref);

// Features [B, P, hidden] of the B pairs -> [2B, P, hidden] (each pair's features for its two rows).
Tensor repeat_pair_features(const Tensor& features);

// Forward only: summed log-probabilities of each of the 2B rows (ids/labels i32 [2B, S]).
DpoLogps dpo_sequence_logps(VisionLanguageModel& model, const Tensor& features2, const Tensor& ids,
                            const Tensor& labels, int64_t* tokens = nullptr);

// The policy's forward and (with backward) backward on the batch, given the reference's log-probabilities;
// the gradients of the mean loss over the pairs accumulate into the trainable parameters. With a
// non-finite loss no backward runs (the trainer skips the batch). `policy_logps` receives the policy's.
DpoBatchStats dpo_policy_step(VisionLanguageModel& policy, const Tensor& features2, const Tensor& ids,
                              const Tensor& labels, const DpoLogps& ref, DpoLossKind kind, double beta, bool backward,
                              DpoLogps* policy_logps = nullptr);

}  // namespace tv
