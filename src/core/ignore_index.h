// The label that marks a position without a target (prompt, padding, vision tokens): PyTorch's
// cross_entropy ignore_index, which the original uses in every phase. The one constant for the code base.
#pragma once
#include <cstdint>

namespace tv {

inline constexpr int32_t kIgnoreIndex = -100;

}  // namespace tv
