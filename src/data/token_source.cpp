#include "data/token_source.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/parquet_source.h"
#include "io/atomic_file.h"
#include "tokenizer/bpe.h"
#include "tokenizer/corpus.h"
#include "tokenizer/shards.h"

namespace tv {
namespace fs = std::filesystem;

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Splits JSONL into documents (the "text" field of each line); errors name file and line.
std::vector<std::string> jsonl_documents(const std::string& path) {
  std::string all = read_file(path);
  std::vector<std::string> docs;
  size_t pos = 0;
  int64_t line = 0;
  while (pos < all.size()) {
    size_t end = all.find('\n', pos);
    if (end == std::string::npos) end = all.size();
    ++line;
    std::string_view l(all.data() + pos, end - pos);
    pos = end + 1;
    if (l.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    nlohmann::json j;
    try {
      tok::require_valid_utf8(l, path + ":" + std::to_string(line));
      j = nlohmann::json::parse(l);
    } catch (const nlohmann::json::parse_error& e) {
      fail(path, ":", line, ": invalid JSON at byte ", e.byte, " of the line");
    } catch (const nlohmann::json::exception&) {
      fail(path, ":", line, ": invalid JSON (a number out of range)");
    }
    if (!j.is_object() || !j.contains("text") || !j["text"].is_string())
      fail(path, ":", line, ": expected an object with a string field \"text\"");
    docs.push_back(j["text"].get<std::string>());
  }
  return docs;
}

}  // namespace

TokenStream open_token_stream(const std::vector<std::string>& paths, const std::string& tokenizer_path,
                              TokenSourceInfo* info) {
  TokenSourceInfo local;
  TokenSourceInfo& in = info ? *info : local;
  // Token shards: directories of shards or shard files, memory-mapped and chained.
  std::vector<std::string> shard_files, text_files;
  for (const std::string& p : paths) {
    if (!is_parquet_path(p) && is_parquet_input(p)) {  // a folder or glob of Parquet files: their "text" column
      for (const std::string& f : parquet_files(p)) text_files.push_back(f);
      continue;
    }
    if (!fs::exists(p)) fail(p, ": no such file or directory");
    if (fs::is_directory(p)) {
      std::vector<std::string> found = tok::list_shards(p);
      if (found.empty()) fail(p, ": directory holds no token shards (write them with `tinyvlm tokenize`)");
      shard_files.insert(shard_files.end(), found.begin(), found.end());
    } else if (tok::is_shard_file(p)) {
      shard_files.push_back(p);
    } else {
      text_files.push_back(p);
    }
  }
  if (!shard_files.empty() && !text_files.empty()) fail("--data mixes token shards and text files; use one kind");

  if (!shard_files.empty()) {
    auto readers = std::make_shared<std::vector<std::unique_ptr<tok::ShardReader>>>();
    auto offsets = std::make_shared<std::vector<int64_t>>();
    int64_t total = 0;
    for (const auto& f : shard_files) {
      readers->push_back(std::make_unique<tok::ShardReader>(f));
      offsets->push_back(total);
      if (int64_t(readers->back()->vocab_size()) > in.id_bound) {
        in.id_bound = int64_t(readers->back()->vocab_size());
        in.id_source = f;
      }
      total += int64_t(readers->back()->size());
    }
    in.shards = int64_t(shard_files.size());
    in.tokens = total;
    TokenStream s;
    s.size = total;
    s.read = [readers, offsets](int64_t start, int64_t n, int32_t* out) {
      // Find the shard holding `start`, then copy across shard boundaries as needed.
      size_t i = size_t(std::upper_bound(offsets->begin(), offsets->end(), start) - offsets->begin()) - 1;
      while (n > 0) {
        int64_t local_start = start - (*offsets)[i];
        int64_t take = std::min<int64_t>(n, int64_t((*readers)[i]->size()) - local_start);
        (*readers)[i]->read(size_t(local_start), size_t(take), out);
        out += take;
        start += take;
        n -= take;
        ++i;
      }
    };
    return s;
  }

  if (tokenizer_path.empty()) fail("raw text input needs --tokenizer tokenizer.json (or tokenize it first)");
  tok::Tokenizer tk = tok::Tokenizer::load(tokenizer_path);
  in.id_bound = tk.id_bound();
  in.id_source = tokenizer_path;
  int32_t eos = tk.token_to_id("</s>");
  std::vector<int32_t> tokens;
  for (const std::string& f : text_files) {
    std::vector<std::string> docs;
    if (ends_with(f, ".jsonl"))
      docs = jsonl_documents(f);
    else if (is_parquet_path(f))
      docs = parquet_texts({f}, "text");
    else {
      docs.push_back(read_file(f));
      tok::require_valid_utf8(docs.back(), f);
    }
    std::vector<std::string_view> views(docs.begin(), docs.end());
    auto enc = tk.encode_batch(views);
    for (auto& e : enc) {
      tokens.insert(tokens.end(), e.begin(), e.end());
      if (eos >= 0) tokens.push_back(eos);
      ++in.documents;
    }
  }
  in.tokens = int64_t(tokens.size());
  return TokenStream::from_vector(std::move(tokens));
}

}  // namespace tv
