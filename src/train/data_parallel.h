// The gradient side of one optimizer step, on one rank or many (docs/distributed.md): the global batch
// is grad_accum micro-batches of the phase's batch size whatever the rank count N; rank r runs the
// micro-batches [r * grad_accum / N, (r + 1) * grad_accum / N) and steps its data past the others. Each
// micro-batch's gradient is computed on its own and the micro-batch gradients are added in one fixed
// pairwise order, within a rank and then across ranks, so that a run on N ranks gives the bits of a run on
// one whenever grad_accum / N and N are powers of two (and the same results to rounding otherwise).
#pragma once
#include "model/params.h"
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

// Fails unless grad_accum is a multiple of the rank count and the task can skip other ranks' batches.
void check_data_parallel(const TrainTask& task, int64_t grad_accum, const std::string& phase);

}  // namespace tv
