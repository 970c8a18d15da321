// Self-contained runs: every checkpoint carries the tokenizer it was trained with, so a run folder
// needs nothing outside itself. Metadata "tokenizer_json" holds the tokenizer.json text and "tokenizer"
// its path relative to the run folder (absolute only when it lies outside), for reference.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>

namespace tv {
namespace tok {
class Tokenizer;
}

// Adds the tokenizer at `path` to a run's checkpoint metadata (fails, naming the path, if unreadable).
void embed_tokenizer(std::map<std::string, std::string>& metadata, const std::string& path, const std::string& run_dir);

// The tokenizer for a checkpoint: `given` when not empty, else the one embedded in the checkpoint's
// metadata, else the file its "tokenizer" entry names (relative to the checkpoint's folder); nullptr when
// the checkpoint has none. A recorded file that is gone fails with a hint to pass --tokenizer. With
// model_vocab > 0, a tokenizer whose ids do not all fit the model's embedding is refused.
std::unique_ptr<tok::Tokenizer> tokenizer_for_checkpoint(const std::string& given, const std::string& checkpoint,
                                                         const std::map<std::string, std::string>& metadata,
                                                         int64_t model_vocab = 0);
// The same, failing when the checkpoint has none; `name` is what messages call the tokenizer (the path
// given, or "<checkpoint> (its tokenizer)").
struct CheckpointTokenizer {
  std::unique_ptr<tok::Tokenizer> tokenizer;
  std::string name;
};
CheckpointTokenizer require_checkpoint_tokenizer(const std::string& given, const std::string& checkpoint,
                                                 int64_t model_vocab = 0);
// Fails unless every id of the tokenizer is below model_vocab; `what` names the tokenizer and the model.
void check_tokenizer_fits(const tok::Tokenizer& t, int64_t model_vocab, const std::string& what);

}  // namespace tv
