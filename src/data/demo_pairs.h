// Built-in preference pairs for the demo's phase 4: questions about the synthetic images (data/synthetic_images.h)
// with the correct one-word answer chosen and a wrong answer of the same kind (another colour, shape, size or
// side) rejected, so that DPO has a preference a small model can learn in seconds.
#pragma once
#include <cstdint>
#include <string>

#include "data/synthetic_images.h"

namespace tv {

// Writes <dir>/<name> as JSONL {"id", "image", "question", "chosen", "rejected"} (image names relative to dir)
// for images [first, last) of `set`: every question of every image, `per_question` pairs each (different wrong
// answers when there are enough). Returns the file's path; `pairs` receives the count.
std::string make_demo_pairs(const SyntheticCaptionSet& set, const std::string& dir, const std::string& name, size_t first,
                            size_t last, int per_question, uint64_t seed, int64_t* pairs = nullptr);

}  // namespace tv
