// `tinyvlm bench image --input FILE_OR_DIR... [--threads N]`: images/s of decode + Resize + CenterCrop
// + normalise, on one thread (with a per-stage breakdown) and on N worker threads through the
// prefetch queue. scripts/bench/image_peer.py measures PIL + torchvision on the same files.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench.h"
#include "core/error.h"
#include "data/image.h"
#include "data/image_prefetch.h"

namespace tv::bench {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// CPU seconds used by this process: on a shared machine this is steadier than wall time.
double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

bool is_image_name(const std::filesystem::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char ch) { return char(std::tolower(ch)); });
  return e == ".jpg" || e == ".jpeg" || e == ".png";
}

// Files as given, and the .jpg/.jpeg/.png files under directories (recursively, sorted).
std::vector<std::string> expand_inputs(const std::vector<std::string>& inputs) {
  namespace fs = std::filesystem;
  std::vector<std::string> files;
  for (const std::string& in : inputs) {
    if (fs::is_directory(in)) {
      std::vector<std::string> found;
      for (const auto& e : fs::recursive_directory_iterator(in))
        if (e.is_regular_file() && is_image_name(e.path())) found.push_back(e.path().string());
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else if (fs::exists(in)) {
      files.push_back(in);
    } else {
      fail("bench image: input '", in, "' does not exist");
    }
  }
  if (files.empty()) fail("bench image: no .jpg/.jpeg/.png files in the inputs");
  return files;
}

struct Options {
  std::vector<std::string> inputs;
  int threads = 0;
  int resize = 256;
  int crop = 224;
  double min_seconds = 2.0;
};

void run(const Options& o) {
  const std::vector<std::string> files = expand_inputs(o.inputs);
  const int threads = o.threads > 0 ? o.threads : int(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<float> out(size_t(3) * o.crop * o.crop);

  // One thread, stage by stage. Whole passes over the file list until min_seconds have passed.
  double t_decode = 0, t_resize = 0, t_norm = 0;
  size_t done = 0, failed = 0, pixels = 0, passes = 0;
  const auto t0 = Clock::now();
  const double c0 = cpu_seconds();
  do {
    ++passes;
    for (const std::string& f : files) {
      auto a = Clock::now();
      ImageU8 rgb;
      try {
        rgb = decode_image_file(f);
      } catch (const Error&) {
        ++failed;
        continue;
      }
      auto b = Clock::now();
      const ImageU8 cropped = resize_center_crop(rgb, o.resize, o.crop);
      auto c = Clock::now();
      normalize_to_chw(cropped, out.data());
      auto d = Clock::now();
      t_decode += std::chrono::duration<double>(b - a).count();
      t_resize += std::chrono::duration<double>(c - b).count();
      t_norm += std::chrono::duration<double>(d - c).count();
      pixels += size_t(rgb.w) * rgb.h;
      ++done;
    }
  } while (seconds_since(t0) < o.min_seconds && done > 0);
  const double t1 = seconds_since(t0), cpu1 = cpu_seconds() - c0;

  std::printf("image: %zu files (%.0f kpixels on average), decode + Resize(%d) + CenterCrop(%d) + normalise"
              " to float CHW\n",
              files.size(), done ? double(pixels) / done / 1000.0 : 0.0, o.resize, o.crop);
  if (failed) std::printf("  %zu of %zu files could not be decoded (counted, skipped)\n", failed / passes, files.size());
  if (done == 0) return;
  std::printf("  1 thread   : %8.1f images/s  (%.2f ms/image: decode %.2f, resize+crop %.2f, normalise %.2f;"
              " %.2f ms CPU/image)\n",
              done / t1, 1e3 * t1 / done, 1e3 * t_decode / done, 1e3 * t_resize / done, 1e3 * t_norm / done,
              1e3 * cpu1 / done);

  // N workers through the prefetch queue, the consumer just takes items in order.
  // Enough passes over the files to run about min_seconds at `threads` times the one-thread rate.
  const double expected = o.min_seconds * (done / t1) * threads;
  const size_t reps = std::max<size_t>(1, size_t(expected / double(files.size())) + 1);
  std::vector<std::string> list;
  for (size_t r = 0; r < reps; ++r) list.insert(list.end(), files.begin(), files.end());
  PrefetchOptions po;
  po.workers = threads;
  po.resize_short = o.resize;
  po.crop = o.crop;
  const auto t2 = Clock::now();
  ImagePrefetcher pf(list, po);
  PrefetchItem item;
  size_t ok = 0;
  while (pf.next(item)) ok += item.ok;
  const double t3 = seconds_since(t2);
  std::printf("  %d thread%s  : %8.1f images/s  (prefetch queue, capacity %d; %.2fx one thread)\n", threads,
              threads == 1 ? " " : "s", ok / t3, pf.capacity(), (ok / t3) / (done / t1));
}

}  // namespace

void add_bench_image(CLI::App& bench) {
  auto opt = std::make_shared<Options>();
  CLI::App* cmd = bench.add_subcommand("image", "images/s of JPEG/PNG decode + resize + crop + normalise (1 and N threads)");
  cmd->add_option("--input,-i", opt->inputs, "image files or directories (searched recursively)")->required();
  cmd->add_option("--threads,-t", opt->threads, "worker threads for the parallel figure (default: all cores)");
  cmd->add_option("--resize", opt->resize, "shorter side after Resize")->check(CLI::PositiveNumber);
  cmd->add_option("--crop", opt->crop, "CenterCrop size")->check(CLI::PositiveNumber);
  cmd->add_option("--min-time", opt->min_seconds, "seconds each measurement runs at least");
  cmd->callback([opt] { run(*opt); });
}

}  // namespace tv::bench
