#include "dist/comm.h"

#include <dlfcn.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>

#include "core/error.h"

namespace tv::dist {
namespace {

// The few OpenMPI entry points used, by their C signatures (handles are pointers in OpenMPI's ABI).
using Handle = void*;
struct Mpi {
  void* lib = nullptr;
  Handle comm_world = nullptr, byte = nullptr;
  int (*Init)(int*, char***) = nullptr;
  int (*Finalize)() = nullptr;
  int (*Comm_rank)(Handle, int*) = nullptr;
  int (*Comm_size)(Handle, int*) = nullptr;
  int (*Alltoallv)(const void*, const int*, const int*, Handle, void*, const int*, const int*, Handle,
                   Handle) = nullptr;
  int (*Allgather)(const void*, int, Handle, void*, int, Handle, Handle) = nullptr;
  int (*Allgatherv)(const void*, int, Handle, void*, const int*, const int*, Handle, Handle) = nullptr;
  int (*Bcast)(void*, int, Handle, int, Handle) = nullptr;
  int (*Barrier)(Handle) = nullptr;
  int (*Abort)(Handle, int) = nullptr;
};

struct State {
  bool initialised = false, finalised = false;
  int rank = 0, size = 1;
  Mpi mpi;
  CommStats stats;
};
State g;

template <typename Fn>
void bind(Fn& fn, const char* name) {
  fn = reinterpret_cast<Fn>(dlsym(g.mpi.lib, name));
  if (!fn) fail("MPI: libmpi has no ", name, " (OpenMPI 4 expected)");
}

void check(int rc, const char* what) {
  if (rc != 0) fail("MPI: ", what, " failed (error ", rc, ") on rank ", g.rank);
}

int to_int(int64_t n, const char* what) {
  if (n < 0 || n > std::numeric_limits<int>::max()) fail("MPI: ", what, " of ", n, " bytes is over the 2 GiB a call takes");
  return int(n);
}

struct Timed {
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  explicit Timed(int64_t sent) {
    g.stats.bytes_sent += sent;
    ++g.stats.calls;
  }
  ~Timed() { g.stats.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); }
};

template <typename T>
void allreduce_sum_impl(T* data, int64_t n) {
  if (g.size == 1 || n == 0) return;
  const int64_t N = g.size, r = g.rank;
  // Rank j owns elements [j * chunk, min(n, (j + 1) * chunk)).
  const int64_t chunk = (n + N - 1) / N;
  auto lo = [&](int64_t j) { return std::min(n, j * chunk); };
  auto len = [&](int64_t j) { return std::min(n, (j + 1) * chunk) - lo(j); };
  std::vector<int> scount(N), sdispl(N), rcount(N), rdispl(N);
  for (int64_t j = 0; j < N; ++j) {
    scount[j] = to_int(len(j) * int64_t(sizeof(T)), "a gradient piece");
    sdispl[j] = to_int(lo(j) * int64_t(sizeof(T)), "an offset");
    rcount[j] = to_int(len(r) * int64_t(sizeof(T)), "a gradient piece");
    rdispl[j] = to_int(j * len(r) * int64_t(sizeof(T)), "an offset");
  }
  std::vector<T> pieces(size_t(N * len(r)));
  {
    Timed t((N - 1) * len(r) * int64_t(sizeof(T)));
    check(g.mpi.Alltoallv(data, scount.data(), sdispl.data(), g.mpi.byte, pieces.data(), rcount.data(),
                          rdispl.data(), g.mpi.byte, g.mpi.comm_world),
          "the gradient reduce-scatter");
  }
  // The pieces of chunk r from every rank, added in the fixed pairwise order over rank index.
  const int64_t m = len(r);
  const int64_t total = tree_reduce(N, [&](int64_t dst, int64_t src) {
    T* d = pieces.data() + dst * m;
    const T* s = pieces.data() + src * m;
    for (int64_t i = 0; i < m; ++i) d[i] += s[i];
  });
  std::vector<int> counts(N), displs(N);
  for (int64_t j = 0; j < N; ++j) {
    counts[j] = to_int(len(j) * int64_t(sizeof(T)), "a gradient piece");
    displs[j] = to_int(lo(j) * int64_t(sizeof(T)), "an offset");
  }
  std::vector<T> mine(pieces.begin() + total * m, pieces.begin() + (total + 1) * m);
  Timed t((N - 1) * m * int64_t(sizeof(T)));
  check(g.mpi.Allgatherv(mine.data(), counts[r], g.mpi.byte, data, counts.data(), displs.data(), g.mpi.byte,
                         g.mpi.comm_world),
        "the gradient all-gather");
}

}  // namespace

void init() {
  if (g.initialised) return;
  g.initialised = true;
  const char* size_env = std::getenv("OMPI_COMM_WORLD_SIZE");
  if (!size_env || std::atoi(size_env) <= 1) return;  // a plain run, or a single-rank job: no MPI needed
  // RTLD_GLOBAL: OpenMPI's own plugins resolve their symbols against libmpi.
  for (const char* name : {"libmpi.so.40", "libmpi.so"}) {
    g.mpi.lib = dlopen(name, RTLD_NOW | RTLD_GLOBAL);
    if (g.mpi.lib) break;
  }
  if (!g.mpi.lib)
    fail("launched under mpirun (OMPI_COMM_WORLD_SIZE=", size_env, ") but libmpi.so.40 cannot be loaded: ", dlerror(),
         " (Debian: apt-get install openmpi-bin libopenmpi-dev)");
  g.mpi.comm_world = dlsym(g.mpi.lib, "ompi_mpi_comm_world");
  g.mpi.byte = dlsym(g.mpi.lib, "ompi_mpi_byte");
  if (!g.mpi.comm_world || !g.mpi.byte) fail("MPI: libmpi is not OpenMPI (no ompi_mpi_comm_world)");
  bind(g.mpi.Init, "MPI_Init");
  bind(g.mpi.Finalize, "MPI_Finalize");
  bind(g.mpi.Comm_rank, "MPI_Comm_rank");
  bind(g.mpi.Comm_size, "MPI_Comm_size");
  bind(g.mpi.Alltoallv, "MPI_Alltoallv");
  bind(g.mpi.Allgather, "MPI_Allgather");
  bind(g.mpi.Allgatherv, "MPI_Allgatherv");
  bind(g.mpi.Bcast, "MPI_Bcast");
  bind(g.mpi.Barrier, "MPI_Barrier");
  bind(g.mpi.Abort, "MPI_Abort");
  check(g.mpi.Init(nullptr, nullptr), "MPI_Init");
  check(g.mpi.Comm_rank(g.mpi.comm_world, &g.rank), "MPI_Comm_rank");
  check(g.mpi.Comm_size(g.mpi.comm_world, &g.size), "MPI_Comm_size");
}

int rank() { return g.rank; }
int world_size() { return g.size; }

void allreduce_sum(float* data, int64_t n) { allreduce_sum_impl(data, n); }
void allreduce_sum(double* data, int64_t n) { allreduce_sum_impl(data, n); }

void allgather(const void* send, int64_t bytes, void* out) {
  if (g.size == 1) {
    if (bytes) std::memcpy(out, send, size_t(bytes));
    return;
  }
  Timed t((g.size - 1) * bytes);
  const int b = to_int(bytes, "an all-gather");
  check(g.mpi.Allgather(send, b, g.mpi.byte, out, b, g.mpi.byte, g.mpi.comm_world), "an all-gather");
}

void broadcast(void* data, int64_t bytes, int root) {
  if (g.size == 1) return;
  Timed t(g.rank == root ? (g.size - 1) * bytes : 0);
  // In pieces of at most 1 GiB (counts are ints).
  constexpr int64_t kPiece = int64_t(1) << 30;
  for (int64_t off = 0; off < bytes; off += kPiece)
    check(g.mpi.Bcast(static_cast<char*>(data) + off, int(std::min(kPiece, bytes - off)), g.mpi.byte, root,
                      g.mpi.comm_world),
          "a broadcast");
}

void barrier() {
  if (g.size == 1) return;
  Timed t(0);
  check(g.mpi.Barrier(g.mpi.comm_world), "a barrier");
}

void abort_job(const char* message, int code) {
  std::fprintf(stderr, "tinyvlm: rank %d of %d: %s; ending the job\n", g.rank, g.size, message);
  std::fflush(stderr);
  if (g.size > 1 && g.mpi.Abort) g.mpi.Abort(g.mpi.comm_world, code);
  std::_Exit(code);
}

void finalize() {
  if (g.size > 1 && !g.finalised && g.mpi.Finalize) {
    g.finalised = true;
    g.mpi.Finalize();
  }
}

CommStats comm_stats() { return g.stats; }

}  // namespace tv::dist
