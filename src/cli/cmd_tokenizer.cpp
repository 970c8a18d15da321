// `tinyvlm tokenizer train|encode|decode|add-special` and `tinyvlm tokenize` (corpus -> shards).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/error.h"
#include "tokenizer/bpe.h"
#include "tokenizer/corpus.h"
#include "tokenizer/shards.h"
#include "tokenizer/trainer.h"
#include "tokenizer/unicode.h"

namespace tv::cli {

namespace {

using tok::Tokenizer;

std::string read_input(const std::string& path) {
  if (path.empty() || path == "-") {
    return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(path, ": cannot open");
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// Buffered stdout for large id dumps.
struct Out {
  std::string buf;
  ~Out() { flush(); }
  void flush() {
    if (!buf.empty()) std::fwrite(buf.data(), 1, buf.size(), stdout);
    buf.clear();
    std::fflush(stdout);
  }
  void put(std::string_view s) {
    buf.append(s);
    if (buf.size() > (1 << 20)) flush();
  }
  void ids(const std::vector<int32_t>& v) {
    char tmp[16];
    for (size_t i = 0; i < v.size(); ++i) {
      const int n = std::snprintf(tmp, sizeof tmp, i ? " %d" : "%d", v[i]);
      buf.append(tmp, size_t(n));
    }
    buf.push_back('\n');
    if (buf.size() > (1 << 20)) flush();
  }
};

std::string checked_text(std::string text, const std::string& where, tok::InvalidUtf8 policy) {
  const size_t bad = tok::find_invalid_utf8(text);
  if (bad == std::string::npos) return text;
  switch (policy) {
    case tok::InvalidUtf8::Error:
      fail(where, ": byte ", bad, ": invalid UTF-8 (use --invalid-utf8 replace to substitute U+FFFD)");
    case tok::InvalidUtf8::Skip:
    case tok::InvalidUtf8::Replace: {
      size_t n = 0;
      std::string fixed = tok::utf8_lossy(text, &n);
      std::fprintf(stderr, "tinyvlm: warning: %s: %zu ill-formed UTF-8 sequence(s) replaced by U+FFFD (first at byte %zu)\n",
                   where.c_str(), n, bad);
      return fixed;
    }
  }
  return text;
}

tok::InputFormat parse_format(const std::string& s) {
  if (s == "auto") return tok::InputFormat::Auto;
  if (s == "text") return tok::InputFormat::Text;
  if (s == "jsonl") return tok::InputFormat::Jsonl;
  if (s == "parquet") return tok::InputFormat::Parquet;
  fail("--format: expected auto, text, jsonl or parquet, got '", s, "'");
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    const size_t c = s.find(',', pos);
    const std::string item = s.substr(pos, c == std::string::npos ? std::string::npos : c - pos);
    if (!item.empty()) out.push_back(item);
    if (c == std::string::npos) break;
    pos = c + 1;
  }
  return out;
}

void report_invalid(const tok::CorpusStats& s) {
  if (s.invalid_docs > 0)
    std::fprintf(stderr, "tinyvlm: warning: %llu document(s) with ill-formed UTF-8 (first at %s), %llu U+FFFD substitution(s)\n",
                 static_cast<unsigned long long>(s.invalid_docs), s.first_invalid.c_str(),
                 static_cast<unsigned long long>(s.replacements));
}

// ------------------------------------------------------------------ tokenizer train

struct TrainArgs {
  std::vector<std::string> inputs;
  size_t vocab_size = 32000;
  uint64_t min_frequency = 2;
  std::string out;
  std::string special = "<unk>,<s>,</s>,<pad>";
  std::string unk = "<unk>";
  bool seen_alphabet = false;
  std::string format = "auto", text_key = "text", invalid = "error";
  std::string column = "text";
  int threads = 0;
  bool quiet = false;
};

void run_train(const TrainArgs& a) {
  tok::TrainOptions o;
  o.vocab_size = a.vocab_size;
  o.min_frequency = a.min_frequency;
  o.special_tokens = split_list(a.special);
  if (a.unk.empty()) o.unk_token.reset();
  else o.unk_token = a.unk;
  o.full_alphabet = !a.seen_alphabet;
  o.threads = a.threads;
  o.progress = !a.quiet;
  tok::CorpusOptions c;
  c.format = parse_format(a.format);
  c.text_key = a.text_key;
  c.column = a.column;
  c.invalid_utf8 = tok::parse_invalid_utf8(a.invalid);
  c.keep_line_endings = true;  // HuggingFace's train(files) feeds each line with its "\n"
  c.skip_empty = true;
  tok::CorpusStats stats;
  tok::WordCounts counts = tok::count_words_in_files(a.inputs, c, o, &stats);
  report_invalid(stats);
  Tokenizer t = tok::train_bpe(counts, o);
  t.save(a.out);
  if (!a.quiet)
    std::fprintf(stderr, "tinyvlm: %llu sequences, %zu distinct words -> %zu tokens, %zu merges: %s\n",
                 static_cast<unsigned long long>(stats.docs), counts.size(), t.vocab_size(), t.num_merges(),
                 a.out.c_str());
}

// ------------------------------------------------------------------ tokenizer encode / decode

struct EncodeArgs {
  std::string tokenizer, input;
  bool lines = false;
  bool no_special = false;
  std::string invalid = "error";
  int threads = 0;
};

void run_encode(const EncodeArgs& a) {
  Tokenizer t = Tokenizer::load(a.tokenizer);
  const std::string where = a.input.empty() ? "<stdin>" : a.input;
  std::string text = checked_text(read_input(a.input), where, tok::parse_invalid_utf8(a.invalid));
  Out out;
  if (!a.lines) {
    out.ids(t.encode_parallel(text, a.threads, !a.no_special));
    return;
  }
  std::vector<std::string_view> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    lines.emplace_back(text.data() + pos, nl - pos);
    pos = nl + 1;
  }
  // Batches keep memory bounded on large inputs; output order is the input order.
  const size_t kBatch = 1 << 16;
  for (size_t b = 0; b < lines.size(); b += kBatch) {
    std::vector<std::string_view> part(lines.begin() + std::ptrdiff_t(b),
                                       lines.begin() + std::ptrdiff_t(std::min(lines.size(), b + kBatch)));
    for (const auto& ids : t.encode_batch(part, a.threads, !a.no_special)) out.ids(ids);
  }
}

struct DecodeArgs {
  std::string tokenizer, input;
  bool keep_special = false;
};

void run_decode(const DecodeArgs& a) {
  Tokenizer t = Tokenizer::load(a.tokenizer);
  const std::string where = a.input.empty() ? "<stdin>" : a.input;
  const std::string text = read_input(a.input);
  Out out;
  size_t pos = 0, line = 0;
  std::vector<int32_t> ids;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    ++line;
    ids.clear();
    const char* p = text.data() + pos;
    const char* end = text.data() + nl;
    while (p < end) {
      while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == ',')) ++p;
      if (p >= end) break;
      char* q = nullptr;
      const long v = std::strtol(p, &q, 10);
      if (q == p || v < 0 || v > INT32_MAX) fail(where, ": line ", line, ": expected token ids, got '", std::string(p, std::min<size_t>(size_t(end - p), 20)), "'");
      ids.push_back(static_cast<int32_t>(v));
      p = q;
    }
    out.put(t.decode(ids, !a.keep_special));
    out.put("\n");
    pos = nl + 1;
  }
}

// ------------------------------------------------------------------ tokenizer add-special

struct AddSpecialArgs {
  std::string tokenizer, out;
  std::vector<std::string> tokens;
};

void run_add_special(const AddSpecialArgs& a) {
  Tokenizer t = Tokenizer::load(a.tokenizer);
  for (const std::string& s : a.tokens) {
    const int32_t id = t.add_special_token(s);
    std::printf("%s\t%d\n", s.c_str(), id);
  }
  t.save(a.out);
}

// ------------------------------------------------------------------ tokenize (shards)

struct TokenizeArgs {
  std::string tokenizer, out;
  std::vector<std::string> inputs;
  std::string eos = "</s>";
  uint64_t shard_tokens = 1ull << 28;
  bool lines = false;
  std::string format = "auto", text_key = "text", invalid = "error";
  std::string column = "text";
  int threads = 0;
  bool quiet = false;
};

void run_tokenize(const TokenizeArgs& a) {
  Tokenizer t = Tokenizer::load(a.tokenizer);
  tok::CorpusOptions c;
  c.format = parse_format(a.format);
  c.text_key = a.text_key;
  c.column = a.column;
  c.invalid_utf8 = tok::parse_invalid_utf8(a.invalid);
  c.whole_file = !a.lines;
  c.keep_line_endings = false;
  c.skip_empty = true;
  tok::TokenizeOptions o;
  o.eos_token = a.eos;
  o.shard_tokens = a.shard_tokens;
  o.threads = a.threads;
  o.progress = !a.quiet;
  tok::CorpusStats cs;
  const tok::TokenizeStats st = tok::tokenize_corpus(t, a.inputs, a.out, c, o, &cs);
  report_invalid(cs);
  if (!a.quiet)
    std::fprintf(stderr, "tinyvlm: %llu documents, %.1f MB -> %llu tokens in %zu shard(s) (%s) in %.2fs (%.1f MB/s)\n",
                 static_cast<unsigned long long>(st.docs), double(st.bytes) / 1e6,
                 static_cast<unsigned long long>(st.tokens), st.shards.size(), a.out.c_str(), st.seconds,
                 st.seconds > 0 ? double(st.bytes) / 1e6 / st.seconds : 0.0);
}

}  // namespace

void add_tokenizer_commands(CLI::App& app) {
  CLI::App* tk = app.add_subcommand("tokenizer", "Byte-level BPE tokenizer (HuggingFace tokenizer.json): train, encode, decode");
  tk->require_subcommand(1);

  {
    auto a = std::make_shared<TrainArgs>();
    CLI::App* c = tk->add_subcommand("train", "Train a byte-level BPE tokenizer (as HuggingFace's BpeTrainer) and write tokenizer.json");
    c->add_option("--input", a->inputs,
                  "Text files (each line with its newline is a sequence), .jsonl files ({\"text\": ...}), or .parquet files, "
                  "folders or globs (one sequence per row of --column)")
        ->required();
    c->add_option("--vocab-size", a->vocab_size, "Vocabulary size, special tokens and the 256 byte characters included")
        ->required();
    c->add_option("--min-frequency", a->min_frequency, "Stop when the best pair occurs fewer times than this")->capture_default_str();
    c->add_option("--out", a->out, "Output tokenizer.json")->required();
    c->add_option("--special-tokens", a->special, "Comma-separated special tokens, placed first")->capture_default_str();
    c->add_option("--unk-token", a->unk, "Model unk_token (empty for none)")->capture_default_str();
    c->add_flag("--seen-alphabet", a->seen_alphabet, "Initial alphabet = bytes seen in the corpus (HF's default) instead of all 256");
    c->add_option("--format", a->format, "Input format: auto (by extension), text, jsonl, parquet")->capture_default_str();
    c->add_option("--text-key", a->text_key, "JSONL field holding the text")->capture_default_str();
    c->add_option("--column", a->column, "Parquet column holding the text (a string, or a list of strings)")->capture_default_str();
    c->add_option("--invalid-utf8", a->invalid, "Ill-formed UTF-8: error (as HuggingFace), replace (U+FFFD) or skip (drop the line)")
        ->capture_default_str();
    c->add_option("--threads", a->threads, "Threads (0 = all)")->check(CLI::Range(0, 256));
    c->add_flag("--quiet", a->quiet, "No progress output");
    c->callback([a] { run_train(*a); });
  }
  {
    auto a = std::make_shared<EncodeArgs>();
    CLI::App* c = tk->add_subcommand("encode", "Text -> token ids (one line of space-separated ids)");
    c->add_option("--tokenizer", a->tokenizer, "tokenizer.json")->required()->check(CLI::ExistingFile);
    c->add_option("--input", a->input, "Input file (default: stdin)");
    c->add_flag("--lines", a->lines, "Encode each input line (without its \\n) separately: one output line per input line");
    c->add_flag("--no-special-tokens", a->no_special, "Do not apply the post-processor's template (add_special_tokens=False)");
    c->add_option("--invalid-utf8", a->invalid, "Ill-formed UTF-8: error or replace (U+FFFD)")->capture_default_str();
    c->add_option("--threads", a->threads, "Threads (0 = all)")->check(CLI::Range(0, 256));
    c->callback([a] { run_encode(*a); });
  }
  {
    auto a = std::make_shared<DecodeArgs>();
    CLI::App* c = tk->add_subcommand("decode", "Token ids -> text: each input line of ids gives one output line");
    c->add_option("--tokenizer", a->tokenizer, "tokenizer.json")->required()->check(CLI::ExistingFile);
    c->add_option("--input", a->input, "Input file (default: stdin)");
    c->add_flag("--keep-special", a->keep_special, "Keep special tokens (skipped by default)");
    c->callback([a] { run_decode(*a); });
  }
  {
    auto a = std::make_shared<AddSpecialArgs>();
    CLI::App* c = tk->add_subcommand("add-special", "Add special tokens (e.g. <image>) as HuggingFace's add_special_tokens does");
    c->add_option("--tokenizer", a->tokenizer, "tokenizer.json")->required()->check(CLI::ExistingFile);
    c->add_option("--token", a->tokens, "Token to add (repeatable)")->required();
    c->add_option("--out", a->out, "Output tokenizer.json")->required();
    c->callback([a] { run_add_special(*a); });
  }
  {
    auto a = std::make_shared<TokenizeArgs>();
    CLI::App* c = app.add_subcommand("tokenize", "Tokenize a corpus into token shards for training (documents separated by EOS)");
    c->add_option("--tokenizer", a->tokenizer, "tokenizer.json")->required()->check(CLI::ExistingFile);
    c->add_option("--input", a->inputs,
                  "Text files (one document each, or per line with --lines), .jsonl files, or .parquet files, folders or "
                  "globs (one document per row of --column)")
        ->required();
    c->add_option("--out", a->out, "Output directory (shard_NNNNN.bin + manifest.json)")->required();
    c->add_option("--eos", a->eos, "Token appended after each document")->capture_default_str();
    c->add_option("--shard-tokens", a->shard_tokens, "Tokens per shard file")->capture_default_str();
    c->add_flag("--lines", a->lines, "Text files: every non-empty line is a document");
    c->add_option("--format", a->format, "Input format: auto (by extension), text, jsonl, parquet")->capture_default_str();
    c->add_option("--text-key", a->text_key, "JSONL field holding the text")->capture_default_str();
    c->add_option("--column", a->column, "Parquet column holding the text (a string, or a list of strings)")->capture_default_str();
    c->add_option("--invalid-utf8", a->invalid, "Ill-formed UTF-8: error, replace (U+FFFD) or skip (drop the document, counted)")
        ->capture_default_str();
    c->add_option("--threads", a->threads, "Threads (0 = all)")->check(CLI::Range(0, 256));
    c->add_flag("--quiet", a->quiet, "No progress output");
    c->callback([a] { run_tokenize(*a); });
  }
}

}  // namespace tv::cli
