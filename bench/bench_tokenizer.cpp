// `tinyvlm bench tokenizer`: encode throughput on one thread and on all threads. The HuggingFace
// `tokenizers` peer (encode_batch, all threads) runs on the same documents and tokenizer through
// scripts/bench/tokenizer.sh, which prints both side by side.
#include <CLI/CLI.hpp>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "bench/bench.h"
#include "core/error.h"
#include "tokenizer/bpe.h"
#include "tokenizer/corpus.h"

namespace tv::bench {
namespace {

struct TokBenchOptions {
  std::string tokenizer;
  std::vector<std::string> inputs;
  int threads = 0;
  int repeats = 3;
  bool whole_file = false;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void run_tokenizer_bench(const TokBenchOptions& o) {
  tok::Tokenizer t = tok::Tokenizer::load(o.tokenizer);
  // Documents exactly as scripts/bench/tokenizer_peer.py reads them: every non-empty line of a text
  // file (without "\n" or "\r\n"), or every record of a JSONL file.
  tok::CorpusOptions copt;
  copt.whole_file = o.whole_file;
  copt.invalid_utf8 = tok::InvalidUtf8::Error;
  tok::CorpusReader reader(o.inputs, copt);
  std::vector<std::string> storage;
  std::vector<std::string_view> batch;
  while (reader.next(batch))
    for (std::string_view d : batch) storage.emplace_back(d);
  std::vector<std::string_view> docs(storage.begin(), storage.end());
  size_t bytes = 0;
  for (auto d : docs) bytes += d.size();
  if (bytes == 0) fail("bench tokenizer: the input holds no text");
  const int all = o.threads > 0 ? o.threads : omp_get_max_threads();
  const double mb = double(bytes) / 1e6;

  // Cold: fresh word caches, one thread.
  t.clear_cache();
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::vector<int32_t>> ref = t.encode_batch(docs, 1);
  const double cold = seconds_since(t0);
  size_t tokens = 0;
  for (const auto& v : ref) tokens += v.size();

  auto best_of = [&](int threads, bool check) {
    double best = 1e30;
    for (int r = 0; r < std::max(1, o.repeats); ++r) {
      auto s = std::chrono::steady_clock::now();
      auto out = t.encode_batch(docs, threads);
      best = std::min(best, seconds_since(s));
      if (check && out != ref) fail("bench tokenizer: ", threads, "-thread ids differ from the 1-thread ids");
    }
    return best;
  };
  const double one = best_of(1, false);
  const double many = best_of(all, true);

  // One long text (the documents joined by "\n") split internally across threads.
  std::string joined;
  joined.reserve(bytes + docs.size());
  for (auto d : docs) {
    joined.append(d);
    joined.push_back('\n');
  }
  double par = 1e30;
  std::vector<int32_t> par_ids;
  for (int r = 0; r < std::max(1, o.repeats); ++r) {
    auto s = std::chrono::steady_clock::now();
    par_ids = t.encode_parallel(joined, all);
    par = std::min(par, seconds_since(s));
  }
  if (par_ids != t.encode(joined)) fail("bench tokenizer: encode_parallel differs from encode");

  std::printf("tinyvlm bench tokenizer: %s (vocab %zu), %.2f MB in %zu documents, %zu tokens (%.2f bytes/token)\n",
              o.tokenizer.c_str(), t.vocab_size(), mb, docs.size(), tokens, double(bytes) / double(tokens));
  std::printf("%-44s %10s %12s\n", "measurement", "MB/s", "Mtokens/s");
  auto row = [&](const std::string& name, double sec, double b) {
    std::printf("%-44s %10.2f %12.3f\n", name.c_str(), b / 1e6 / sec, double(tokens) / sec / 1e6);
  };
  row("tinyvlm encode, 1 thread, cold cache", cold, double(bytes));
  row("tinyvlm encode, 1 thread", one, double(bytes));
  row("tinyvlm encode_batch, " + std::to_string(all) + " threads", many, double(bytes));
  row("tinyvlm encode_parallel (one text), " + std::to_string(all) + " threads", par, double(joined.size()));
  // Machine-readable summary for scripts/bench/tokenizer.sh; the checksum
  // sum(id * (i % 65521 + 1)) mod 2^64 over the concatenated ids is the peer's too.
  uint64_t checksum = 0, i = 0;
  for (const auto& v : ref)
    for (int32_t id : v) checksum += uint64_t(id) * ((i++ % 65521) + 1);
  std::printf("RESULT tinyvlm_1t_mbps=%.3f tinyvlm_batch_mbps=%.3f threads=%d bytes=%zu tokens=%zu checksum=%llu\n",
              mb / one, mb / many, all, bytes, tokens, static_cast<unsigned long long>(checksum));
}

}  // namespace

void add_bench_tokenizer(CLI::App& bench) {
  CLI::App* cmd = bench.add_subcommand("tokenizer", "Tokenizer encode MB/s on one thread and on all threads");
  auto o = std::make_shared<TokBenchOptions>();
  cmd->add_option("--tokenizer", o->tokenizer, "tokenizer.json")->required()->check(CLI::ExistingFile);
  cmd->add_option("--input", o->inputs, "Text files (one document per non-empty line) or .jsonl files")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--threads", o->threads, "Threads for the parallel runs (0 = all)");
  cmd->add_option("--repeats", o->repeats, "Timed runs per measurement (best is reported)")->capture_default_str();
  cmd->add_flag("--whole-file", o->whole_file, "Each text file is one document");
  cmd->callback([o] { run_tokenizer_bench(*o); });
}

}  // namespace tv::bench
