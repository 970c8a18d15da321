// Reading training text: plain-text files (line by line, or whole), JSONL files ({"text": ...}
// per line) and Parquet files (a string column, one document per row; folders and globs of them too),
// with UTF-8 checking. Shared by the BPE trainer and the corpus tokenizer.
#pragma once
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "io/mapped_file.h"

namespace tv::tok {

// What to do with bytes that are not well-formed UTF-8. HuggingFace refuses such input (Error);
// Replace substitutes U+FFFD for each ill-formed subpart (as Python's errors="replace");
// Skip drops the whole document (line or record) and counts it.
enum class InvalidUtf8 { Error, Replace, Skip };
InvalidUtf8 parse_invalid_utf8(const std::string& s);  // "error" | "replace" | "skip"

// The check every command applies to text it tokenizes (tokenize's default, --invalid-utf8 error):
// fails with "<where>: byte N: invalid UTF-8" at the first ill-formed byte.
void require_valid_utf8(std::string_view text, const std::string& where);

enum class InputFormat { Auto, Text, Jsonl, Parquet };  // Auto: *.jsonl / *.json are JSONL, *.parquet Parquet, the rest text

struct CorpusOptions {
  InputFormat format = InputFormat::Auto;
  std::string text_key = "text";  // JSONL field holding the document
  std::string column = "text";    // Parquet column holding the document (a string, or a list: one per element)
  InvalidUtf8 invalid_utf8 = InvalidUtf8::Error;
  // Text files: each line is a document. keep_line_endings keeps its "\n" (HuggingFace's
  // train(files) feeds lines that way); otherwise "\n" and a preceding "\r" are dropped.
  bool keep_line_endings = false;
  bool whole_file = false;  // text files: the whole file is one document
  bool skip_empty = true;   // drop empty documents
};

struct CorpusStats {
  uint64_t files = 0;
  uint64_t docs = 0;           // documents delivered
  uint64_t bytes = 0;          // bytes of documents delivered
  uint64_t invalid_docs = 0;   // documents with ill-formed UTF-8 (replaced or skipped)
  uint64_t replacements = 0;   // U+FFFD substitutions made
  std::string first_invalid;   // "file: byte N" of the first ill-formed byte seen
};

// Streams documents in file order, in batches. The views of a batch stay valid until the next
// call to next(). Errors name the file and the byte offset (or line for JSONL).
class CorpusReader {
 public:
  CorpusReader(std::vector<std::string> files, CorpusOptions opt);
  ~CorpusReader();

  // Fills docs with the next documents (about max_bytes of text). False at the end.
  bool next(std::vector<std::string_view>& docs, size_t max_bytes = size_t(16) << 20);

  uint64_t total_bytes() const { return total_bytes_; }  // sum of input file sizes
  uint64_t bytes_read() const { return bytes_read_; }    // input bytes consumed so far
  const CorpusStats& stats() const { return stats_; }

 private:
  bool open_next_file();
  // Applies the UTF-8 policy to a document found at `offset` of the current file. Returns false to
  // drop it; may replace *doc with an owned, repaired copy.
  bool check_utf8(std::string_view* doc, uint64_t offset, const std::string* where = nullptr);
  struct ParquetState;  // the Parquet file being read (corpus.cpp)
  std::unique_ptr<ParquetState> pq_;

  std::vector<std::string> files_;
  CorpusOptions opt_;
  size_t file_index_ = 0;
  MappedFile file_;
  bool file_open_ = false;
  bool jsonl_ = false;
  size_t pos_ = 0;       // position in the current file
  uint64_t line_ = 0;    // current line number (JSONL messages)
  uint64_t total_bytes_ = 0, bytes_read_ = 0, done_files_bytes_ = 0;
  CorpusStats stats_;
  std::deque<std::string> owned_;  // repaired or unescaped documents of the current batch
  std::vector<MappedFile> retired_;  // files finished during the current batch (its views point there)
};

}  // namespace tv::tok
