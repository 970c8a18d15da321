// The process group of a data-parallel run. Launched under mpirun (OpenMPI), every process is one rank
// of the job; otherwise there is one rank and nothing here touches MPI. libmpi is loaded with dlopen
// only when the MPI environment asks for it, so a plain run needs no MPI installed (docs/distributed.md).
//
// Collectives are blocking and use only byte transport from MPI; every reduction is done here, in a
// fixed order, so that results do not depend on MPI's choice of algorithm.
#pragma once
#include <cstdint>
#include <vector>

namespace tv::dist {

// Joins the job if launched under mpirun (reads OMPI_COMM_WORLD_SIZE); idempotent. Fails with a clear
// message when the environment names MPI but libmpi cannot be loaded.
void init();
int rank();        // 0 without MPI
int world_size();  // 1 without MPI
inline bool distributed() { return world_size() > 1; }

// Sums equal-length float vectors across ranks in place, every rank getting the same bits: a fixed-order
// reduce-scatter (rank r owns chunk r and adds the ranks' pieces as a pairwise tree over rank index) and
// an all-gather.
void allreduce_sum(float* data, int64_t n);
void allreduce_sum(double* data, int64_t n);
// out[r * bytes .. (r + 1) * bytes) = rank r's `bytes` bytes.
void allgather(const void* send, int64_t bytes, void* out);
void broadcast(void* data, int64_t bytes, int root);
void barrier();
// Ends the whole job (every rank) with this exit code after `message` is printed by this rank.
[[noreturn]] void abort_job(const char* message, int code);
// Leaves the job cleanly (MPI_Finalize); called at normal exit.
void finalize();

// Time spent in collectives and the bytes this rank sent, since the start.
struct CommStats {
  double seconds = 0;
  int64_t bytes_sent = 0, calls = 0;
};
CommStats comm_stats();

// The fixed pairwise order in which `count` partial results are added: the binary counter's carries, so
// that a perfect subtree (a power-of-two block aligned to its size) is summed the same way wherever it
// sits. merge(dst, src) must do dst += src; items are indices in [0, count); returns the index that
// holds the total.
template <typename Merge>
int64_t tree_reduce(int64_t count, Merge merge) {
  std::vector<std::pair<int64_t, int>> stack;  // (index, level)
  for (int64_t i = 0; i < count; ++i) {
    int64_t cur = i;
    int level = 0;
    while (!stack.empty() && stack.back().second == level) {
      merge(stack.back().first, cur);
      cur = stack.back().first;
      stack.pop_back();
      ++level;
    }
    stack.push_back({cur, level});
  }
  while (stack.size() > 1) {
    auto right = stack.back();
    stack.pop_back();
    merge(stack.back().first, right.first);
  }
  return stack.empty() ? -1 : stack.back().first;
}

}  // namespace tv::dist
