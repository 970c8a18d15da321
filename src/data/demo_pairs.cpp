#include "data/demo_pairs.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "core/rng.h"
#include "io/atomic_file.h"

namespace tv {

std::string make_demo_pairs(const SyntheticCaptionSet& set, const std::string& dir, const std::string& name, size_t first,
                            size_t last, int per_question, uint64_t seed, int64_t* pairs) {
  namespace fs = std::filesystem;
  TV_CHECK(first <= last && last <= set.scenes.size() && set.scenes.size() == set.images.size(), "make_demo_pairs: images [",
           first, ", ", last, ") asked of ", set.scenes.size());
  // Every answer a kind of question has in the whole set: the wrong answers are drawn from these.
  std::map<std::string, std::set<std::string>> answers;
  for (const SyntheticScene& sc : set.scenes)
    for (const SyntheticQuestion& q : synthetic_questions(sc)) answers[q.kind].insert(q.answer);
  Rng rng(seed);
  std::string jsonl;
  int64_t n = 0;
  for (size_t i = first; i < last; ++i) {
    const std::string image = fs::path(set.images[i]).filename().string();
    for (const SyntheticQuestion& q : synthetic_questions(set.scenes[i])) {
      std::vector<std::string> wrong;
      for (const std::string& a : answers[q.kind])
        if (a != q.answer) wrong.push_back(a);
      if (wrong.empty()) continue;
      for (size_t k = wrong.size() - 1; k > 0; --k) std::swap(wrong[k], wrong[rng.below(uint64_t(k + 1))]);
      for (int c = 0; c < per_question; ++c) {
        jsonl += nlohmann::json{{"id", image + "#" + q.kind + std::to_string(c)},
                                {"image", image},
                                {"question", q.question},
                                {"chosen", q.answer},
                                {"rejected", wrong[size_t(c) % wrong.size()]}}
                     .dump() +
                 "\n";
        ++n;
      }
    }
  }
  const std::string path = (fs::path(dir) / name).string();
  write_file_atomic(path, jsonl);
  if (pairs) *pairs = n;
  return path;
}

}  // namespace tv
