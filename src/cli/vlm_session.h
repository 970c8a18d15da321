// What `ask` and `chat` share: a vision-language checkpoint, its tokenizer and the generator options,
// loaded and checked once.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "model/generator.h"
#include "model/vlm.h"
#include "tokenizer/bpe.h"

namespace tv::cli {

struct VlmSession {
  std::unique_ptr<LoadedVlm> vlm;
  tok::Tokenizer tokenizer;
  int32_t eos = 2;
};

// Loads the checkpoint (config from --config or its metadata) and the tokenizer (--tokenizer, else the
// one the checkpoint records); checks that the tokenizer fits the decoder's vocabulary and puts
// <image> where the model does.
VlmSession open_vlm_session(const std::string& model, const std::string& config, const std::string& tokenizer,
                            const std::vector<std::string>& sets);

}  // namespace tv::cli
