// The built-in demo corpus: short, simple English stories and scene descriptions generated from a
// seeded grammar, so the demo needs no download and a small model can learn it in minutes.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace tv {

std::vector<std::string> demo_documents(int64_t count, uint64_t seed);

}  // namespace tv
