// Reading a run's metrics.jsonl (train/trainer.h writes it: one JSON object a line, training lines with
// "split": "train", validation lines with "split": "val" and val_* keys, skipped-batch events) into
// numeric series keyed by name, for the report (report/html_report.h) and `tinyvlm report`.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace tv::report {

// One metric over the run, in file order. A non-finite value (the JSON writer stores NaN and infinities
// as null) is kept as NaN, so that a plot leaves a gap there instead of joining across it.
struct Series {
  std::vector<double> step, value;
};

struct RunMetrics {
  std::string label;   // the name a legend shows (the run folder's name by default)
  std::string source;  // the file read, for messages
  std::string phase;   // the "phase" of its lines ("" when they name none)
  // Training keys as logged ("loss", "lr", "aux", ...); validation keys always with the val_ prefix
  // ("val_loss"; a validation key logged without it gets it).
  std::map<std::string, Series> series;
  int64_t lines = 0;            // non-empty lines read
  int64_t bad_lines = 0;        // malformed lines skipped (BadLines::Skip only)
  int64_t first_bad_line = 0;   // 1-based line number of the first of them
  std::string first_bad_reason;
  int64_t nonfinite_values = 0;  // null values (NaN or infinity when written)
  int64_t skipped_batches = 0;   // "event": "skipped_nonfinite_batch" lines
  int64_t last_step = -1;        // the highest step of any line (-1: none)

  bool has(const std::string& key) const { return series.count(key) != 0; }
};

// What to do with a malformed line (not a JSON object, or without a non-negative integer "step"):
// Fail throws a tv::Error naming the file and line; Skip leaves it out and counts it (bad_lines,
// first_bad_line). The training loop reads with Skip, so that a torn last line never stops a run.
enum class BadLines { Fail, Skip };

// `source` names the text in messages; the label is the source's folder name.
RunMetrics parse_metrics(std::string_view text, const std::string& source, BadLines bad = BadLines::Fail);
// Reads <path> (a metrics.jsonl, or a run folder holding one). A missing file is an error.
RunMetrics read_metrics(const std::string& path, BadLines bad = BadLines::Fail);

// The label a run gets from its metrics file's path: the folder's name ("runs/demo/pretrain/metrics.jsonl"
// -> "pretrain").
std::string run_label(const std::string& metrics_path);

}  // namespace tv::report
