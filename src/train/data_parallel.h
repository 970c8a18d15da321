// The gradient side of one optimizer step, on one rank or many (docs/distributed.md): the global batch
// is grad_accum micro-batches of the phase's batch size whatever the rank count N; rank r runs the
// micro-batches [r * grad_accum / N, (r + 1) * grad_accum / N) and steps its data past the others. Each
// micro-batch's gradient is computed on its own and the micro-batch gradients are added in one fixed
// pairwise order, within a rank and then across ranks, so that a run on N ranks gives the bits of a run on
// one whenever grad_accum / N and N are powers of two (and the same results to rounding otherwise).
#pragma once
#include "model/params.h"
#include "train/optimizer.h"
#include "train/trainer.h"

namespace tv {

struct GlobalBatch {
  StepStats mean;      // the micro-batches' losses and metrics averaged in micro-batch order; tokens summed
  bool finite = true;  // every micro-batch loss finite, on every rank
};

// Leaves in every trainable parameter's gradient the sum over the global batch's micro-batches (the same
// on every rank) and Param::has_grad set where any rank's backward wrote it. A non-finite batch is agreed
// on by all ranks and its gradients are not reduced.
GlobalBatch accumulate_global_batch(ParamStore& params, TrainTask& task, int64_t grad_accum);

// Every rank takes rank 0's parameter values (a no-op on one rank).
void broadcast_params(ParamStore& params);

// ZeRO-1: the trainable parameters split, in registration order, into one contiguous run per rank of
// about equal size; each rank keeps AdamW moments for its run alone and updates only those parameters,
// then every updated parameter is shared from its owner. The updates are the same arithmetic on the same
// reduced gradients, so a ZeRO-1 run gives the bits of a plain one.
struct ZeroPlan {
  std::vector<int> owner;  // per entry of params.all(): the owning rank, -1 if frozen
};
ZeroPlan zero_plan(ParamStore& params);
// Shards `opt` for this rank: its moments for other ranks' parameters are dropped, AdamW::only set.
void zero_shard(AdamW& opt, ParamStore& params, const ZeroPlan& plan);
// After AdamW::apply: every parameter that got a gradient takes its owner's new value.
void zero_share_params(ParamStore& params, const ZeroPlan& plan);
// The whole optimizer state (every rank's moments) on every rank, for a checkpoint.
AdamW zero_gather_state(const AdamW& opt, ParamStore& params, const ZeroPlan& plan);
// Rank 0's value of a flag, on every rank.
bool agree_with_rank0(bool flag);

// Fails unless grad_accum is a multiple of the rank count and the task can skip other ranks' batches.
void check_data_parallel(const TrainTask& task, int64_t grad_accum, const std::string& phase);

}  // namespace tv
