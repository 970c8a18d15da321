#include "tokenizer/pretokenize.h"

namespace tv::tok {

std::vector<std::string_view> gpt2_pieces(std::string_view text) {
  std::vector<std::string_view> out;
  gpt2_split(text, [&](size_t off, size_t len) { out.push_back(text.substr(off, len)); });
  return out;
}

}  // namespace tv::tok
