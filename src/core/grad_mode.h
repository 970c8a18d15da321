// How a backward op writes a gradient buffer (see core/ops.h).
#pragma once

namespace tv::ops {

// Backward ops accumulate into their gradients. Where the caller's buffer for a gradient is fresh,
// GradMode::Overwrite writes it instead, which saves zeroing it and reading the zeros back.
enum class GradMode { Accumulate, Overwrite };

}  // namespace tv::ops
