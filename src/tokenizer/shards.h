// Token shards: the corpus as one stream of token ids, documents separated by EOS, split across
// files of a fixed binary format that the trainer memory-maps.
//
// File layout (little-endian), see docs/tokenizer.md:
//   offset  size  field
//        0     8  magic "TVTOKENS"
//        8     4  version (1)
//       12     4  token width in bytes: 2 (uint16, when every id < 65536) or 4 (uint32)
//       16     8  number of tokens in this file
//       24     8  number of documents that end (with EOS) in this file
//       32     4  vocabulary bound (one past the largest id)
//       36     4  EOS id
//       40    24  reserved (zero)
//       64     -  tokens
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "io/mapped_file.h"

namespace tv::tok {

class Tokenizer;
struct CorpusOptions;
struct CorpusStats;

inline constexpr char kShardMagic[8] = {'T', 'V', 'T', 'O', 'K', 'E', 'N', 'S'};
inline constexpr uint32_t kShardVersion = 1;
inline constexpr size_t kShardHeaderBytes = 64;

struct ShardHeader {
  uint32_t version = kShardVersion;
  uint32_t token_bytes = 2;
  uint64_t num_tokens = 0;
  uint64_t num_docs = 0;
  uint32_t vocab_size = 0;
  int32_t eos_id = -1;
};

// Token width for a vocabulary bound: 2 when every id fits uint16, else 4.
inline uint32_t shard_token_bytes(uint32_t vocab_size) { return vocab_size <= 65536 ? 2 : 4; }

// Writes one shard file; the header is finalized by close() (or the destructor).
class ShardWriter {
 public:
  ShardWriter(const std::string& path, uint32_t vocab_size, int32_t eos_id);
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  void write(const int32_t* ids, size_t n);
  void end_document() { ++header_.num_docs; }
  uint64_t num_tokens() const { return header_.num_tokens; }
  void close();

 private:
  void write_header();
  std::string path_;
  std::FILE* f_ = nullptr;
  ShardHeader header_;
  std::vector<uint8_t> buf_;
};

// Read-only, memory-mapped view of one shard file.
class ShardReader {
 public:
  explicit ShardReader(const std::string& path);

  uint64_t size() const { return header_.num_tokens; }   // tokens in the file
  uint64_t num_docs() const { return header_.num_docs; }
  uint32_t token_bytes() const { return header_.token_bytes; }
  uint32_t vocab_size() const { return header_.vocab_size; }
  int32_t eos_id() const { return header_.eos_id; }
  const ShardHeader& header() const { return header_; }
  const std::string& path() const { return file_.path(); }

  int32_t token(uint64_t i) const {
    return header_.token_bytes == 2 ? int32_t(reinterpret_cast<const uint16_t*>(data_)[i])
                                    : int32_t(reinterpret_cast<const uint32_t*>(data_)[i]);
  }
  // Copies tokens [start, start + n) to out; throws when the range is outside the file.
  void read(uint64_t start, size_t n, int32_t* out) const;
  // The raw token array (uint16_t or uint32_t according to token_bytes()).
  const void* data() const { return data_; }

 private:
  MappedFile file_;
  ShardHeader header_;
  const char* data_ = nullptr;
};

// shard_*.bin files of a directory, in name order (the stream order).
std::vector<std::string> list_shards(const std::string& dir);
// True when the file starts with the shard magic.
bool is_shard_file(const std::string& path);

// All shards of a directory (shard_*.bin in name order, as tokenize_corpus writes them) seen as one
// token stream.
class ShardSet {
 public:
  explicit ShardSet(const std::string& dir_or_file);
  explicit ShardSet(const std::vector<std::string>& files);

  uint64_t size() const { return total_; }
  uint32_t vocab_size() const { return vocab_size_; }
  int32_t eos_id() const { return eos_id_; }
  size_t num_shards() const { return shards_.size(); }
  const ShardReader& shard(size_t i) const { return shards_[i]; }
  int32_t token(uint64_t i) const;
  void read(uint64_t start, size_t n, int32_t* out) const;

 private:
  void init();
  std::vector<ShardReader> shards_;
  std::vector<uint64_t> starts_;  // global index of each shard's first token
  uint64_t total_ = 0;
  uint32_t vocab_size_ = 0;
  int32_t eos_id_ = -1;
};

struct TokenizeOptions {
  // Text files are one document each (as `tinyvlm pretrain` reads raw text) unless lines is set
  // (then every non-empty line is a document). JSONL files: one document per record.
  std::string eos_token = "</s>";   // appended after every document
  uint64_t shard_tokens = 1ull << 28;  // tokens per shard file (the last one may be shorter)
  int threads = 0;                  // 0: all
  bool progress = true;
  size_t batch_bytes = size_t(32) << 20;  // text encoded per parallel step
};

struct TokenizeStats {
  uint64_t docs = 0, tokens = 0, bytes = 0;
  std::vector<std::string> shards;
  double seconds = 0;
};

// Encodes the documents of `files` (see CorpusReader) into out_dir/shard_NNNNN.bin and writes
// out_dir/manifest.json. Output is independent of the thread count.
TokenizeStats tokenize_corpus(const Tokenizer& tok, const std::vector<std::string>& files, const std::string& out_dir,
                              const CorpusOptions& copt, const TokenizeOptions& opt, CorpusStats* cstats = nullptr);

}  // namespace tv::tok
