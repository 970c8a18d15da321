#include "tokenizer/corpus.h"

#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include <cstring>

#include "core/error.h"
#include "io/parquet_source.h"
#include "tokenizer/unicode.h"

namespace tv::tok {

InvalidUtf8 parse_invalid_utf8(const std::string& s) {
  if (s == "error") return InvalidUtf8::Error;
  if (s == "replace") return InvalidUtf8::Replace;
  if (s == "skip") return InvalidUtf8::Skip;
  fail("--invalid-utf8: expected error, replace or skip, got '", s, "'");
}

namespace {

bool ends_with(const std::string& s, const char* suffix) {
  const size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

}  // namespace

struct CorpusReader::ParquetState {
  ParquetRowReader reader;
  size_t row = 0;
  uint64_t size = 0;
};

CorpusReader::CorpusReader(std::vector<std::string> files, CorpusOptions opt)
    : files_(expand_inputs(files)), opt_(std::move(opt)) {
  for (const std::string& f : files_) {
    struct stat st {};
    if (::stat(f.c_str(), &st) != 0) fail(f, ": cannot open input file");
    total_bytes_ += static_cast<uint64_t>(st.st_size);
  }
}

CorpusReader::~CorpusReader() = default;

bool CorpusReader::open_next_file() {
  if (pq_) {
    done_files_bytes_ += pq_->size;
    pq_.reset();
    file_open_ = false;
  }
  if (file_open_) {
    done_files_bytes_ += file_.size();
    retired_.push_back(std::move(file_));
    file_ = MappedFile();
    file_open_ = false;
  }
  if (file_index_ >= files_.size()) return false;
  const std::string& path = files_[file_index_++];
  if (opt_.format == InputFormat::Parquet || (opt_.format == InputFormat::Auto && is_parquet_path(path))) {
    pq::require_text_field(pq::ParquetFile(path), opt_.column);
    pq_.reset(new ParquetState{ParquetRowReader({path}, {opt_.column}), 0, 0});
    pq_->size = pq_->reader.total_bytes();
    pq_->row = 0;
    file_open_ = true;
    ++stats_.files;
    return true;
  }
  file_ = MappedFile(path);
  file_open_ = true;
  pos_ = 0;
  line_ = 0;
  ++stats_.files;
  jsonl_ = opt_.format == InputFormat::Jsonl ||
           (opt_.format == InputFormat::Auto && (ends_with(path, ".jsonl") || ends_with(path, ".json")));
  return true;
}

void require_valid_utf8(std::string_view text, const std::string& where) {
  const size_t bad = find_invalid_utf8(text);
  if (bad != std::string_view::npos)
    fail(where, ": byte ", bad, ": invalid UTF-8 (`tinyvlm tokenize --invalid-utf8 replace` or `skip` accepts such text)");
}

bool CorpusReader::check_utf8(std::string_view* doc, uint64_t offset, const std::string* at) {
  const size_t bad = find_invalid_utf8(*doc);
  if (bad == std::string_view::npos) return true;
  const std::string where = at ? str_cat(*at, ": byte ", bad, " of the text") : str_cat(file_.path(), ": byte ", offset + bad);
  if (stats_.first_invalid.empty()) stats_.first_invalid = where;
  switch (opt_.invalid_utf8) {
    case InvalidUtf8::Error:
      fail(where, ": invalid UTF-8 (use --invalid-utf8 replace or skip to accept such input)");
    case InvalidUtf8::Skip:
      ++stats_.invalid_docs;
      return false;
    case InvalidUtf8::Replace: {
      size_t n = 0;
      owned_.push_back(utf8_lossy(*doc, &n));
      stats_.replacements += n;
      ++stats_.invalid_docs;
      *doc = owned_.back();
      return true;
    }
  }
  return true;
}

bool CorpusReader::next(std::vector<std::string_view>& docs, size_t max_bytes) {
  docs.clear();
  owned_.clear();
  retired_.clear();
  size_t batch_bytes = 0;
  while (batch_bytes < max_bytes) {
    if (pq_) {
      // One row group at a time; its texts are views into it, so a batch ends where a group does.
      if (pq_->row >= pq_->reader.rows()) {
        if (!docs.empty()) break;
        if (!pq_->reader.next_group()) {
          if (!open_next_file()) break;
          continue;
        }
        pq_->row = 0;
      }
      const size_t r = pq_->row++;
      const pq::Value& v = pq_->reader.value(0, r);
      auto take = [&](std::string_view doc) {
        batch_bytes += doc.size();
        if (find_invalid_utf8(doc) != std::string_view::npos) {  // only then is the row's name needed
          const std::string where = pq_->reader.where(r);
          if (!check_utf8(&doc, 0, &where)) return;
        }
        if (doc.empty() && opt_.skip_empty) return;
        docs.push_back(doc);
        stats_.bytes += doc.size();
        ++stats_.docs;
      };
      if (v.kind == pq::Value::Bytes) take(v.bytes);
      else if (v.kind != pq::Value::Null)
        for (std::string_view doc : pq::as_texts(v, pq_->reader.where(r))) take(doc);
      continue;
    }
    if (!file_open_ || pos_ >= file_.size()) {
      if (!open_next_file()) break;
      if (file_.size() == 0) continue;
    }
    const std::string_view all = file_.view();
    if (!jsonl_ && opt_.whole_file) {
      std::string_view doc = all;
      pos_ = all.size();
      if (!check_utf8(&doc, 0)) continue;
      if (doc.empty() && opt_.skip_empty) continue;
      docs.push_back(doc);
      batch_bytes += doc.size();
      stats_.bytes += doc.size();
      ++stats_.docs;
      continue;
    }
    // One line.
    const size_t start = pos_;
    const size_t nl = all.find('\n', start);
    const size_t end = nl == std::string_view::npos ? all.size() : nl + 1;
    pos_ = end;
    ++line_;
    std::string_view line = all.substr(start, end - start);
    batch_bytes += line.size();
    if (jsonl_) {
      if (!check_utf8(&line, start)) continue;
      size_t b = 0, e = line.size();
      while (b < e && (line[b] == ' ' || line[b] == '\t' || line[b] == '\r' || line[b] == '\n')) ++b;
      while (e > b && (line[e - 1] == ' ' || line[e - 1] == '\t' || line[e - 1] == '\r' || line[e - 1] == '\n')) --e;
      if (b == e) continue;  // blank line
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line.substr(b, e - b));
      } catch (const nlohmann::json::exception& ex) {
        fail(file_.path(), ": line ", line_, " (byte ", start, "): not valid JSON: ", ex.what());
      }
      if (!j.is_object()) fail(file_.path(), ": line ", line_, ": expected a JSON object");
      auto it = j.find(opt_.text_key);
      if (it == j.end() || !it->is_string())
        fail(file_.path(), ": line ", line_, ": no string field \"", opt_.text_key, "\" (choose it with --text-key)");
      owned_.push_back(it->get<std::string>());
      std::string_view doc = owned_.back();
      if (doc.empty() && opt_.skip_empty) continue;
      docs.push_back(doc);
      stats_.bytes += doc.size();
      ++stats_.docs;
      continue;
    }
    if (!opt_.keep_line_endings) {
      if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    }
    if (!check_utf8(&line, start)) continue;
    if (line.empty() && opt_.skip_empty) continue;
    docs.push_back(line);
    stats_.bytes += line.size();
    ++stats_.docs;
  }
  bytes_read_ = done_files_bytes_ + (pq_ ? pq_->reader.bytes_done() : file_open_ ? pos_ : 0);
  return !docs.empty() || file_open_ || file_index_ < files_.size();
}

}  // namespace tv::tok
