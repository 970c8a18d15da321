#include "train/data_parallel.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/ops.h"
#include "core/profile.h"
#include "dist/comm.h"

namespace tv {
namespace {

// Gradients travel in pieces of this many elements: the reduction's scratch memory stays bounded and
// the result does not depend on it (every element is added in the same rank order in any piece).
constexpr int64_t kBucket = int64_t(4) << 20;

void allreduce_flat(Tensor& flat) {
  TV_PROFILE("grad_allreduce");
  const int64_t n = flat.numel();
  for (int64_t off = 0; off < n; off += kBucket) {
    const int64_t len = std::min(kBucket, n - off);
    if (flat.dtype() == DType::F32)
      dist::allreduce_sum(flat.data<float>() + off, len);
    else if (flat.dtype() == DType::F64)
      dist::allreduce_sum(flat.data<double>() + off, len);
    else
      fail("data parallelism: ", dtype_name(flat.dtype()), " gradients cannot be reduced");
  }
}

// The micro-batches' statistics of every rank, in micro-batch order: rank r's block holds its own.
std::vector<StepStats> gather_stats(const std::vector<StepStats>& mine, int64_t total) {
  if (!dist::distributed()) return mine;
  TV_CHECK(!mine.empty(), "gather_stats: no micro-batches on rank ", dist::rank());
  std::vector<std::string> keys;
  for (auto& [k, x] : mine[0].metrics) keys.push_back(k);
  const size_t width = 2 + keys.size();
  std::vector<double> send;
  for (const StepStats& s : mine) {
    TV_CHECK(s.metrics.size() == keys.size(), "a micro-batch reported other metrics than the first");
    send.push_back(s.loss);
    send.push_back(double(s.tokens));
    for (const std::string& k : keys) send.push_back(s.metrics.at(k));
  }
  std::vector<double> all(size_t(total) * width);
  dist::allgather(send.data(), int64_t(send.size() * sizeof(double)), all.data());
  std::vector<StepStats> out(static_cast<size_t>(total));
  for (size_t m = 0; m < out.size(); ++m) {
    const double* row = all.data() + m * width;
    out[m].loss = row[0];
    out[m].tokens = int64_t(row[1]);
    for (size_t i = 0; i < keys.size(); ++i) out[m].metrics[keys[i]] = row[2 + i];
  }
  return out;
}

// dist::tree_reduce's order fed one micro-batch at a time, so that at most log2(count) + 1 partial sums
// are alive instead of one per micro-batch. An item is the flat gradient of every group; merges always
// add the later item into the earlier one.
struct PairwiseSum {
  std::vector<std::pair<std::vector<Tensor>, int>> stack;  // (partial sum, level)
  static void add(std::vector<Tensor>& dst, const std::vector<Tensor>& src) {
    for (size_t g = 0; g < dst.size(); ++g) ops::add_(dst[g], src[g]);
  }
  void push(std::vector<Tensor> item) {
    int level = 0;
    while (!stack.empty() && stack.back().second == level) {
      add(stack.back().first, item);
      item = std::move(stack.back().first);
      stack.pop_back();
      ++level;
    }
    stack.push_back({std::move(item), level});
  }
  std::vector<Tensor> finish() {
    while (stack.size() > 1) {
      std::vector<Tensor> right = std::move(stack.back().first);
      stack.pop_back();
      add(stack.back().first, right);
    }
    return stack.back().first;
  }
};

}  // namespace

void check_data_parallel(const TrainTask& task, int64_t grad_accum, const std::string& phase) {
  const int N = dist::world_size();
  if (N == 1) return;
  if (grad_accum % N != 0)
    fail(phase, ": grad_accum = ", grad_accum, " is not a multiple of the ", N,
         " ranks: every rank runs whole micro-batches, so that the global batch (grad_accum x batch size) and the "
         "results do not depend on the rank count; set grad_accum to a multiple of ", N);
  if (!task.skip_micro) fail(phase, ": this phase cannot run on several ranks (its data cannot skip a micro-batch)");
}

GlobalBatch accumulate_global_batch(ParamStore& params, TrainTask& task, int64_t grad_accum) {
  const int64_t N = dist::world_size(), local = grad_accum / N, first = dist::rank() * local;
  std::vector<ParamStore::GradGroup>& groups = params.grad_groups();
  std::vector<Param*> order;  // every trainable parameter, in group order
  for (auto& g : groups)
    for (Param* p : g.params) order.push_back(p);
  std::vector<uint8_t> used(order.size(), 0);
  std::vector<StepStats> mine;
  PairwiseSum local_sum;  // this rank's micro-batches, added as they finish
  // One rank with one micro-batch: the gradients are what the backward left; nothing to add or zero.
  const bool plain = N == 1 && grad_accum == 1;
  for (int64_t m = 0; m < grad_accum; ++m) {
    if (m < first || m >= first + local) {
      task.skip_micro();
      continue;
    }
    params.zero_grad();
    mine.push_back(task.micro_step());
    if (plain) break;
    for (size_t i = 0; i < order.size(); ++i) {
      if (order[i]->has_grad)
        used[i] = 1;
      else
        order[i]->grad_or_null();  // zeros, so that adding this micro-batch adds nothing for it
    }
    // The last one stays in the live buffers (it is only ever added into an earlier partial sum).
    std::vector<Tensor> item;
    for (auto& g : groups) item.push_back(int64_t(mine.size()) < local ? g.flat.clone() : g.flat);
    local_sum.push(std::move(item));
  }

  GlobalBatch out;
  const std::vector<StepStats> all = gather_stats(mine, grad_accum);
  for (const StepStats& s : all) {
    if (!std::isfinite(s.loss)) out.finite = false;
    out.mean.loss += s.loss / double(grad_accum);
    for (auto& [k, x] : s.metrics) out.mean.metrics[k] += x / double(grad_accum);
    out.mean.tokens += s.tokens;
  }
  if (plain) return out;
  if (!out.finite) {
    // Nothing of this batch may reach the optimizer, and the next backward must not add to it.
    for (Param* p : order) {
      p->has_grad = false;
      p->grad_stale = true;
    }
    return out;
  }

  // This rank's micro-batches in the fixed pairwise order, the total into the live gradient buffers.
  if (local > 1) {
    std::vector<Tensor> total = local_sum.finish();
    for (size_t g = 0; g < groups.size(); ++g) groups[g].flat.copy_from(total[g]);
  }
  if (N > 1) {
    std::vector<uint8_t> all_used(used.size() * size_t(N));
    dist::allgather(used.data(), int64_t(used.size()), all_used.data());
    for (int64_t r = 0; r < N; ++r)
      for (size_t i = 0; i < used.size(); ++i) used[i] |= all_used[size_t(r) * used.size() + i];
    for (auto& g : groups) allreduce_flat(g.flat);
  }
  for (size_t i = 0; i < order.size(); ++i) order[i]->has_grad = used[i] != 0;
  return out;
}

void broadcast_params(ParamStore& params) {
  if (!dist::distributed()) return;
  for (Param& p : params.all()) {
    TV_CHECK(p.value.device() == Device::CPU && p.value.is_contiguous(), "broadcast_params: ", p.name,
             " is not a contiguous host tensor");
    dist::broadcast(p.value.raw(), int64_t(p.value.nbytes()), 0);
  }
}

ZeroPlan zero_plan(ParamStore& params) {
  ZeroPlan plan;
  const int64_t N = dist::world_size();
  const int64_t total = params.count(true);
  int64_t before = 0;
  for (const Param& p : params.all()) {
    if (!p.trainable) {
      plan.owner.push_back(-1);
      continue;
    }
    // The rank whose share of the total holds this parameter's first element.
    plan.owner.push_back(total > 0 ? int(std::min<int64_t>(N - 1, before * N / total)) : 0);
    before += p.value.numel();
  }
  return plan;
}

void zero_shard(AdamW& opt, ParamStore& params, const ZeroPlan& plan) {
  opt.only.clear();
  size_t i = 0;
  for (const Param& p : params.all()) {
    const int o = plan.owner[i++];
    if (o < 0) continue;
    if (o == dist::rank()) {
      opt.only.push_back(p.name);
    } else {
      opt.m.erase(p.name);
      opt.v.erase(p.name);
      opt.steps.erase(p.name);
    }
  }
  std::sort(opt.only.begin(), opt.only.end());
  // A rank that owns nothing (more ranks than parameters) must still update nothing.
  if (opt.only.empty()) opt.only.push_back(std::string("\x01no parameter"));
}

void zero_share_params(ParamStore& params, const ZeroPlan& plan) {
  TV_PROFILE("zero_share_params");
  size_t i = 0;
  for (Param& p : params.all()) {
    const int o = plan.owner[i++];
    if (o < 0 || !p.has_grad) continue;  // has_grad is agreed across ranks: the same list everywhere
    dist::broadcast(p.value.raw(), int64_t(p.value.nbytes()), o);
  }
}

AdamW zero_gather_state(const AdamW& opt, ParamStore& params, const ZeroPlan& plan) {
  AdamW full = opt;
  full.only.clear();
  size_t i = 0;
  for (Param& p : params.all()) {
    const int o = plan.owner[i++];
    if (o < 0) continue;
    int64_t header[2] = {0, 0};  // has moments, update count
    if (o == dist::rank() && opt.m.count(p.name)) {
      header[0] = 1;
      header[1] = opt.steps.at(p.name);
    }
    dist::broadcast(header, sizeof header, o);
    if (!header[0]) continue;
    if (o != dist::rank()) {
      full.m[p.name] = Tensor::zeros(p.value.shape(), p.value.dtype(), p.value.device());
      full.v[p.name] = Tensor::zeros(p.value.shape(), p.value.dtype(), p.value.device());
      full.steps[p.name] = header[1];
    }
    dist::broadcast(full.m.at(p.name).raw(), int64_t(p.value.nbytes()), o);
    dist::broadcast(full.v.at(p.name).raw(), int64_t(p.value.nbytes()), o);
  }
  return full;
}

bool agree_with_rank0(bool flag) {
  uint8_t b = flag ? 1 : 0;
  dist::broadcast(&b, 1, 0);
  return b != 0;
}

}  // namespace tv
