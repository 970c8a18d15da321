#include "train/run_tokenizer.h"

#include <filesystem>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/tensor_source.h"
#include "tokenizer/bpe.h"
#include "train/trainer.h"

namespace tv {
namespace fs = std::filesystem;

void embed_tokenizer(std::map<std::string, std::string>& metadata, const std::string& path, const std::string& run_dir) {
  std::string text = read_file(path);
  tok::Tokenizer::from_json(text, path);  // a broken tokenizer is refused before any training
  metadata["tokenizer_json"] = std::move(text);
  metadata["tokenizer"] = path_for_run(path, run_dir);
}

void check_tokenizer_fits(const tok::Tokenizer& t, int64_t model_vocab, const std::string& what) {
  if (model_vocab > 0 && t.id_bound() > model_vocab)
    fail(what, ": the tokenizer has ids up to ", t.id_bound() - 1, " but the model's embedding has only ", model_vocab,
         " rows (vocab_size); use the tokenizer the model was trained with");
}

namespace {
std::unique_ptr<tok::Tokenizer> find_tokenizer(const std::string& given, const std::string& checkpoint,
                                               const std::map<std::string, std::string>& metadata) {
  if (!given.empty()) return std::make_unique<tok::Tokenizer>(tok::Tokenizer::load(given));
  if (auto it = metadata.find("tokenizer_json"); it != metadata.end())
    return std::make_unique<tok::Tokenizer>(tok::Tokenizer::from_json(it->second, checkpoint + " (embedded tokenizer)"));
  auto it = metadata.find("tokenizer");
  if (it == metadata.end()) return nullptr;
  fs::path p = it->second;
  // A relative path is relative to the run folder, the folder of the checkpoint as the user named it.
  if (p.is_relative()) p = fs::path(checkpoint).parent_path() / p;
  std::error_code ec;
  if (!fs::is_regular_file(p, ec))
    fail(checkpoint, ": the tokenizer this checkpoint records (", it->second,
         ") is not there any more; pass --tokenizer tokenizer.json");
  return std::make_unique<tok::Tokenizer>(tok::Tokenizer::load(p.string()));
}
}  // namespace

std::unique_ptr<tok::Tokenizer> tokenizer_for_checkpoint(const std::string& given, const std::string& checkpoint,
                                                         const std::map<std::string, std::string>& metadata,
                                                         int64_t model_vocab) {
  std::unique_ptr<tok::Tokenizer> t = find_tokenizer(given, checkpoint, metadata);
  if (t) check_tokenizer_fits(*t, model_vocab, (given.empty() ? checkpoint : given) + " with " + checkpoint);
  return t;
}

CheckpointTokenizer require_checkpoint_tokenizer(const std::string& given, const std::string& checkpoint,
                                                 int64_t model_vocab) {
  CheckpointTokenizer t;
  t.tokenizer = tokenizer_for_checkpoint(given, checkpoint, open_tensor_file(checkpoint)->metadata(), model_vocab);
  if (!t.tokenizer) fail(checkpoint, ": the checkpoint records no tokenizer; pass --tokenizer tokenizer.json");
  t.name = given.empty() ? checkpoint + " (its tokenizer)" : given;
  return t;
}

}  // namespace tv
