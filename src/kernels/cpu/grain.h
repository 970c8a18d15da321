// Below this many elements of work a kernel loop runs on one thread: starting a team costs more than
// the work, and on a busy machine one descheduled thread stalls the whole team.
#pragma once
#include <cstdint>

namespace tv::cpu {

constexpr int64_t kParallelGrain = 1 << 15;

}  // namespace tv::cpu
