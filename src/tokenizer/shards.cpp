#include "tokenizer/shards.h"

#include "io/run_dir.h"

#include <omp.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <fstream>

#include "core/error.h"
#include "tokenizer/bpe.h"
#include "tokenizer/corpus.h"
#include "tokenizer/progress.h"

namespace tv::tok {

namespace fs = std::filesystem;

namespace {

void put32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void put64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint32_t get32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t(p[i]) << (8 * i);
  return v;
}
uint64_t get64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t(p[i]) << (8 * i);
  return v;
}

}  // namespace

// ------------------------------------------------------------------ writer

ShardWriter::ShardWriter(const std::string& path, uint32_t vocab_size, int32_t eos_id) : path_(path) {
  header_.vocab_size = vocab_size;
  header_.eos_id = eos_id;
  header_.token_bytes = shard_token_bytes(vocab_size);
  f_ = std::fopen(path.c_str(), "wb");
  if (!f_) fail(path, ": cannot create shard file");
  write_header();
}

ShardWriter::~ShardWriter() {
  try {
    close();
  } catch (...) {
  }
}

void ShardWriter::write_header() {
  uint8_t h[kShardHeaderBytes] = {};
  std::memcpy(h, kShardMagic, 8);
  put32(h + 8, header_.version);
  put32(h + 12, header_.token_bytes);
  put64(h + 16, header_.num_tokens);
  put64(h + 24, header_.num_docs);
  put32(h + 32, header_.vocab_size);
  put32(h + 36, static_cast<uint32_t>(header_.eos_id));
  if (std::fseek(f_, 0, SEEK_SET) != 0 || std::fwrite(h, 1, sizeof h, f_) != sizeof h)
    fail(path_, ": cannot write shard header");
}

void ShardWriter::write(const int32_t* ids, size_t n) {
  if (!f_) fail(path_, ": write after close");
  const uint32_t w = header_.token_bytes;
  buf_.resize(n * w);
  for (size_t i = 0; i < n; ++i) {
    const auto v = static_cast<uint32_t>(ids[i]);
    if (ids[i] < 0 || v >= header_.vocab_size) fail(path_, ": token id ", ids[i], " outside [0, ", header_.vocab_size, ")");
    if (w == 2) {
      buf_[2 * i] = static_cast<uint8_t>(v);
      buf_[2 * i + 1] = static_cast<uint8_t>(v >> 8);
    } else {
      put32(&buf_[4 * i], v);
    }
  }
  if (std::fwrite(buf_.data(), 1, buf_.size(), f_) != buf_.size()) fail(path_, ": write failed (disk full?)");
  header_.num_tokens += n;
}

void ShardWriter::close() {
  if (!f_) return;
  write_header();
  const int rc = std::fclose(f_);
  f_ = nullptr;
  if (rc != 0) fail(path_, ": close failed");
}

// ------------------------------------------------------------------ reader

ShardReader::ShardReader(const std::string& path) : file_(path) {
  const auto* p = reinterpret_cast<const uint8_t*>(file_.data());
  if (file_.size() < kShardHeaderBytes) fail(path, ": too short for a token shard (", file_.size(), " bytes)");
  if (std::memcmp(p, kShardMagic, 8) != 0) fail(path, ": not a token shard (bad magic)");
  header_.version = get32(p + 8);
  if (header_.version != kShardVersion) fail(path, ": shard version ", header_.version, ", expected ", kShardVersion);
  header_.token_bytes = get32(p + 12);
  if (header_.token_bytes != 2 && header_.token_bytes != 4)
    fail(path, ": token width ", header_.token_bytes, " bytes, expected 2 or 4");
  header_.num_tokens = get64(p + 16);
  header_.num_docs = get64(p + 24);
  header_.vocab_size = get32(p + 32);
  header_.eos_id = static_cast<int32_t>(get32(p + 36));
  // Compared by division: num_tokens * token_bytes can wrap around 2^64 and pass a product check.
  const uint64_t body = file_.size() - kShardHeaderBytes;
  if (header_.num_tokens > body / header_.token_bytes || body % header_.token_bytes ||
      header_.num_tokens != body / header_.token_bytes)
    fail(path, ": ", file_.size(), " bytes, but the header promises ", header_.num_tokens, " tokens of ",
         header_.token_bytes, " bytes");
  if (header_.num_docs > header_.num_tokens)
    fail(path, ": the header promises ", header_.num_docs, " documents in ", header_.num_tokens, " tokens");
  if (header_.vocab_size == 0 || header_.vocab_size > (1u << 31) - 1 ||
      (header_.token_bytes == 2 && header_.vocab_size > 65536))
    fail(path, ": vocabulary size ", header_.vocab_size, " does not fit ", header_.token_bytes, "-byte tokens");
  if (header_.eos_id < 0 || uint32_t(header_.eos_id) >= header_.vocab_size)
    fail(path, ": EOS id ", header_.eos_id, " is outside the vocabulary of ", header_.vocab_size);
  data_ = file_.data() + kShardHeaderBytes;
}

void ShardReader::read(uint64_t start, size_t n, int32_t* out) const {
  if (start > header_.num_tokens || n > header_.num_tokens - start)
    fail(path(), ": read of tokens [", start, ", ", start + n, ") past the end (", header_.num_tokens, ")");
  if (header_.token_bytes == 2) {
    const auto* s = reinterpret_cast<const uint16_t*>(data_) + start;
    for (size_t i = 0; i < n; ++i) out[i] = s[i];
  } else {
    const auto* s = reinterpret_cast<const uint32_t*>(data_) + start;
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<int32_t>(s[i]);
  }
}

std::vector<std::string> list_shards(const std::string& dir) {
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("shard_", 0) == 0 && e.path().extension() == ".bin") files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

bool is_shard_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  char magic[8] = {};
  if (!f.read(magic, 8)) return false;
  return std::memcmp(magic, kShardMagic, 8) == 0;
}

ShardSet::ShardSet(const std::string& dir_or_file) {
  std::vector<std::string> files;
  if (fs::is_directory(dir_or_file)) {
    files = list_shards(dir_or_file);
    if (files.empty()) fail(dir_or_file, ": no shard_*.bin files");
  } else {
    files.push_back(dir_or_file);
  }
  for (const std::string& f : files) shards_.emplace_back(f);
  init();
}

ShardSet::ShardSet(const std::vector<std::string>& files) {
  if (files.empty()) fail("ShardSet: no shard files given");
  for (const std::string& f : files) shards_.emplace_back(f);
  init();
}

void ShardSet::init() {
  vocab_size_ = shards_[0].vocab_size();
  eos_id_ = shards_[0].eos_id();
  for (const ShardReader& s : shards_) {
    if (s.vocab_size() != vocab_size_ || s.eos_id() != eos_id_)
      fail(s.path(), ": vocabulary ", s.vocab_size(), " / EOS ", s.eos_id(), " differ from ", shards_[0].path());
    starts_.push_back(total_);
    total_ += s.size();
  }
}

int32_t ShardSet::token(uint64_t i) const {
  const size_t k = static_cast<size_t>(std::upper_bound(starts_.begin(), starts_.end(), i) - starts_.begin()) - 1;
  return shards_[k].token(i - starts_[k]);
}

void ShardSet::read(uint64_t start, size_t n, int32_t* out) const {
  if (start > total_ || n > total_ - start) fail("shards: read of tokens [", start, ", ", start + n, ") past the end (", total_, ")");
  size_t k = static_cast<size_t>(std::upper_bound(starts_.begin(), starts_.end(), start) - starts_.begin()) - 1;
  while (n > 0) {
    // Skip empty shards.
    while (start - starts_[k] >= shards_[k].size()) ++k;
    const uint64_t local = start - starts_[k];
    const size_t take = static_cast<size_t>(std::min<uint64_t>(n, shards_[k].size() - local));
    shards_[k].read(local, take, out);
    out += take;
    start += take;
    n -= take;
  }
}

// ------------------------------------------------------------------ corpus -> shards

TokenizeStats tokenize_corpus(const Tokenizer& tok, const std::vector<std::string>& files, const std::string& out_dir,
                              const CorpusOptions& copt, const TokenizeOptions& opt, CorpusStats* cstats) {
  const auto t0 = std::chrono::steady_clock::now();
  const int32_t eos = tok.token_to_id(opt.eos_token);
  if (eos < 0) fail("tokenize: EOS token '", opt.eos_token, "' is not in the tokenizer");
  TV_CHECK(opt.shard_tokens > 0, "shard size must be positive");
  const auto vocab = static_cast<uint32_t>(tok.id_bound());
  // The shards go into a new folder next to out_dir, swapped in only once complete: a failure leaves an
  // earlier corpus in out_dir as it was. A folder holding anything but shards is not ours to replace.
  if (fs::exists(out_dir)) {
    if (!fs::is_directory(out_dir)) fail(out_dir, ": exists and is not a folder");
    for (const auto& e : fs::directory_iterator(out_dir)) {
      const std::string name = e.path().filename().string();
      bool ours = (name.rfind("shard_", 0) == 0 && e.path().extension() == ".bin") || name == "manifest.json";
      if (!ours)
        fail(out_dir, " holds other files than token shards (", name, "); choose an empty or new output folder");
    }
  }
  const std::string final_dir = out_dir;
  fs::path norm = fs::path(out_dir).lexically_normal();
  if (norm.filename().empty()) norm = norm.parent_path();  // "dir/" names "dir"
  const std::string partial = (norm.parent_path() / (norm.filename().string() + ".partial")).string();
  struct RemoveUnlessDone {
    std::string path;
    bool done = false;
    ~RemoveUnlessDone() {
      std::error_code ec;
      if (!done) fs::remove_all(path, ec);
    }
  } guard{partial};
  {
    std::error_code ec;
    fs::remove_all(partial, ec);  // left by a tokenize that was killed
    fs::create_directories(partial, ec);
    if (ec) fail(partial, ": cannot create the output folder (", ec.message(), ")");
  }
  const std::string& out_dir_for_writes = partial;

  const int nt = opt.threads > 0 ? opt.threads : omp_get_max_threads();
  CorpusReader reader(files, copt);
  Progress progress("tokenizing", reader.total_bytes(), opt.progress);
  TokenizeStats st;
  std::unique_ptr<ShardWriter> writer;
  std::vector<uint64_t> shard_tokens_list, shard_docs_list;
  uint64_t docs_in_shard = 0;
  auto open_shard = [&]() {
    char name[32];
    std::snprintf(name, sizeof name, "shard_%05zu.bin", st.shards.size());
    const std::string path = (fs::path(out_dir_for_writes) / name).string();
    writer = std::make_unique<ShardWriter>(path, vocab, eos);
    st.shards.push_back(name);
    docs_in_shard = 0;
  };
  auto close_shard = [&]() {
    if (!writer) return;
    shard_tokens_list.push_back(writer->num_tokens());
    shard_docs_list.push_back(docs_in_shard);
    writer->close();
    writer.reset();
  };
  // Appends ids, rolling over to a new shard every shard_tokens tokens.
  auto emit = [&](const int32_t* ids, size_t n) {
    while (n > 0) {
      if (!writer || writer->num_tokens() >= opt.shard_tokens) {
        close_shard();
        open_shard();
      }
      const size_t room = static_cast<size_t>(opt.shard_tokens - writer->num_tokens());
      const size_t take = std::min(n, room);
      writer->write(ids, take);
      ids += take;
      n -= take;
    }
  };

  std::vector<std::string_view> docs;
  std::vector<std::vector<int32_t>> enc;
  while (reader.next(docs, opt.batch_bytes)) {
    enc.resize(docs.size());
    const auto n = static_cast<int64_t>(docs.size());
    // Large documents are split internally (encode_parallel); the rest go one per thread.
    constexpr size_t kBig = size_t(1) << 20;
    for (int64_t i = 0; i < n; ++i)
      if (docs[i].size() >= kBig) {
        enc[i] = tok.encode_parallel(docs[i], nt);
        enc[i].push_back(eos);
      }
#pragma omp parallel for schedule(dynamic, 8) num_threads(nt)
    for (int64_t i = 0; i < n; ++i) {
      if (docs[i].size() >= kBig) continue;
      enc[i].clear();
      tok.encode_into(docs[i], enc[i]);
      enc[i].push_back(eos);
    }
    for (int64_t i = 0; i < n; ++i) {
      emit(enc[i].data(), enc[i].size());
      writer->end_document();
      ++docs_in_shard;
      st.tokens += enc[i].size();
      st.bytes += docs[i].size();
    }
    st.docs += static_cast<uint64_t>(n);
    progress.update(reader.bytes_read(), st.tokens, "tokens");
  }
  if (!writer) open_shard();  // an empty corpus still gets one (empty) shard
  close_shard();
  progress.finish();
  if (cstats) *cstats = reader.stats();

  nlohmann::ordered_json m;
  m["format"] = "tinyvlm-token-shards";
  m["version"] = kShardVersion;
  m["token_bytes"] = shard_token_bytes(vocab);
  m["vocab_size"] = vocab;
  m["eos_id"] = eos;
  m["eos_token"] = opt.eos_token;
  m["num_tokens"] = st.tokens;
  m["num_docs"] = st.docs;
  m["text_bytes"] = st.bytes;
  m["invalid_utf8_docs"] = reader.stats().invalid_docs;
  m["inputs"] = files;
  nlohmann::ordered_json shards = nlohmann::ordered_json::array();
  for (size_t i = 0; i < st.shards.size(); ++i)
    shards.push_back({{"file", st.shards[i]}, {"num_tokens", shard_tokens_list[i]}, {"num_docs", shard_docs_list[i]}});
  m["shards"] = shards;
  {
    std::ofstream mf(fs::path(out_dir_for_writes) / "manifest.json");
    mf << m.dump(2) << "\n";
    mf.close();
    if (!mf) fail(final_dir, ": cannot write manifest.json");
  }
  swap_in_folder(partial, final_dir);
  guard.done = true;
  st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return st;
}

}  // namespace tv::tok
