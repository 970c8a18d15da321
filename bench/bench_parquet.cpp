// `tinyvlm bench parquet`: reading a Parquet text column (MB/s of text) and decoding an image column
// (images/s, bytes -> RGB), one thread, several rounds; scripts/bench/parquet.sh runs pyarrow + PIL beside it.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "bench/bench.h"
#include "data/image.h"
#include "io/parquet.h"
#include "io/parquet_rows.h"

namespace tv::bench {
namespace {

struct Options {
  std::string input, column = "text", image_column;
  int rounds = 5;
};

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void run(const Options& o) {
  pq::ParquetFile f(o.input);
  std::printf("%s: %lld rows, %d row groups, %.1f MB\n", o.input.c_str(), (long long)f.num_rows(), f.num_row_groups(),
              double(f.file_size()) / 1e6);
  if (!o.column.empty()) {
    pq::require_text_field(f, o.column);
    std::vector<double> t;
    uint64_t bytes = 0, texts = 0;
    for (int r = 0; r < o.rounds; ++r) {
      bytes = texts = 0;
      const auto t0 = std::chrono::steady_clock::now();
      for (int g = 0; g < f.num_row_groups(); ++g) {
        pq::FieldValues fv = pq::read_field(f, g, o.column);
        for (const pq::Value& v : fv.rows)
          if (v.kind == pq::Value::Bytes) {
            bytes += v.bytes.size();
            ++texts;
          }
      }
      t.push_back(seconds_since(t0));
    }
    const double s = median(t), best = *std::min_element(t.begin(), t.end());
    std::printf("text column '%s': %llu texts, %.1f MB of text; %d rounds: median %.1f MB/s, best %.1f MB/s of text\n",
                o.column.c_str(), (unsigned long long)texts, double(bytes) / 1e6, o.rounds, double(bytes) / 1e6 / s,
                double(bytes) / 1e6 / best);
  }
  if (!o.image_column.empty()) {
    std::vector<double> t;
    uint64_t n = 0, bad = 0;
    for (int r = 0; r < o.rounds; ++r) {
      n = bad = 0;
      const auto t0 = std::chrono::steady_clock::now();
      for (int g = 0; g < f.num_row_groups(); ++g) {
        pq::FieldValues fv = pq::read_field(f, g, o.image_column);
        for (const pq::Value& v : fv.rows)
          for (const pq::ImageRef& im : pq::as_images(v, o.input)) {
            try {
              const ImageU8 rgb = decode_image_memory(reinterpret_cast<const uint8_t*>(im.bytes.data()), im.bytes.size());
              n += rgb.w > 0;
            } catch (const std::exception&) {
              ++bad;
            }
          }
      }
      t.push_back(seconds_since(t0));
    }
    const double s = median(t), best = *std::min_element(t.begin(), t.end());
    std::printf("image column '%s': %llu images decoded to RGB (%llu unreadable); %d rounds: median %.1f, best %.1f images/s\n",
                o.image_column.c_str(), (unsigned long long)n, (unsigned long long)bad, o.rounds, double(n) / s,
                double(n) / best);
  }
}

}  // namespace

void add_bench_parquet(CLI::App& bench) {
  auto o = std::make_shared<Options>();
  CLI::App* cmd = bench.add_subcommand("parquet", "MB/s reading a Parquet text column, images/s decoding an image column (1 thread)");
  cmd->add_option("--input,-i", o->input, "A .parquet file")->required()->check(CLI::ExistingFile);
  cmd->add_option("--column", o->column, "Text column (empty: skip)")->capture_default_str();
  cmd->add_option("--image-column", o->image_column, "Image column ({bytes, path} structs; empty: skip)");
  cmd->add_option("--rounds", o->rounds, "Rounds (the median is reported)")->check(CLI::PositiveNumber)->capture_default_str();
  cmd->callback([o] { run(*o); });
}

}  // namespace tv::bench
