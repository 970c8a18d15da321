// report.html: one self-contained page (inline CSS and SVG, images as data: URLs, no script, nothing
// fetched) with a run's curves from its metrics.jsonl, several runs overlaid (one colour per run), and
// for the demo the held-out examples of each phase beside the model's outputs. See docs/report.md.
#pragma once
#include <string>
#include <vector>

#include "report/metrics_reader.h"
#include "report/svg_plot.h"

namespace tv::report {

// One held-out example: its image, the prompt or question, what was expected and what the model said.
struct Sample {
  std::string image_name;  // shown under the image ("img0391.png")
  std::string png;         // the image as PNG bytes (data/png_encode.h), inlined; empty: no image
  std::string prompt;      // the question or the generation prompt ("" for a caption)
  std::string expected;    // "" when there is nothing to compare with (free generation)
  std::string answer;      // the model's output
  int verdict = -1;        // 1 right, 0 wrong, -1 not judged
};

struct Section {
  std::string title;               // "Phase 1: pretraining"
  std::vector<std::string> notes;  // lines under the title (what the phase showed)
  std::vector<RunMetrics> runs;    // plotted together: one colour per series for one run, per run for several
  std::string samples_title;       // the heading of the samples table
  std::vector<Sample> samples;
};

struct Report {
  std::string title;
  std::vector<std::string> notes;
  std::vector<Section> sections;
};

// The plot table: each row draws the metric keys it names that the runs have (training keys as logged,
// validation keys with val_). Extend it here for new metrics; a key present in no row (nor in
// hidden_keys()) still gets a plot of its own under its name, after the table's.
struct PlotRow {
  std::string id, title, y_label;
  std::vector<std::string> keys;
  YScale scale = YScale::Auto;
  bool smooth = false;  // long series drawn as bucket means (noisy per-step values such as throughput)
};
const std::vector<PlotRow>& plot_rows();
// Keys logged but not plotted because another plot shows them (phase 1's ce is the loss without its
// aux term).
const std::vector<std::string>& hidden_keys();

// The plots a set of runs gets: the table's rows with at least one key present (keys not present
// dropped), then one row per other key, in name order.
std::vector<PlotRow> plots_for(const std::vector<RunMetrics>& runs);

std::string render_html(const Report& r);

// Every page carries this tag in its head, so that a file can be told to be one (and be replaced).
constexpr const char* kGeneratorTag = "<meta name=\"generator\" content=\"tinyvlm report\">";
// True when the file at `path` starts as render_html's pages do (holds kGeneratorTag in its head).
bool is_generated_report(const std::string& path);

// Writes the page to `path` through a temporary file and a rename.
void write_report(const std::string& path, const Report& r);

// <run_dir>/report.html from <run_dir>/metrics.jsonl (malformed lines skipped and counted: the file may
// be appended to while it is read). Returns the path written.
std::string write_run_report(const std::string& run_dir);

}  // namespace tv::report
