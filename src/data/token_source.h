// Opens the training text of phase 1 as one token stream: token shards written by `tinyvlm tokenize`
// (memory-mapped), or raw text (.txt: one document per file; .jsonl: one {"text": ...} document per line)
// tokenized on the fly with the given tokenizer. Documents are separated by the EOS token.
#pragma once
#include <string>
#include <vector>

#include "data/token_windows.h"

namespace tv {

struct TokenSourceInfo {
  int64_t documents = 0, tokens = 0, shards = 0;
  int64_t id_bound = 0;  // one past the largest token id the source can hold (shard header / tokenizer)
  std::string id_source;  // where id_bound comes from, for error messages
};

TokenStream open_token_stream(const std::vector<std::string>& paths, const std::string& tokenizer_path,
                              TokenSourceInfo* info = nullptr);

}  // namespace tv
