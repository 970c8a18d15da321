// The demo's report.html (runs/demo/report.html): one section per phase with that phase's curves (its run
// folder's metrics.jsonl) and its held-out examples beside the model's outputs, images inline. The page
// is rewritten after every phase, so that a phase that fails still leaves the page of those before it.
//
// A phase adds itself with one DemoPhase:
//   DemoPhase p;
//   p.title = "Phase 4: preference tuning (DPO)";
//   p.run_dir = dpo_out;                          // plotted: loss, accuracy, rewards, margin, ...
//   p.notes.push_back("held-out preference accuracy 52% -> 81%");
//   p.samples_title = "Held-out pairs";
//   p.samples.push_back(demo_image_sample(image_path, question, expected, model_output, verdict));
//   report.add(p);                                // writes the page
#pragma once
#include <string>
#include <vector>

#include "report/html_report.h"

namespace tv::cli {

struct DemoPhase {
  std::string title;
  std::string run_dir;             // the phase's run folder ("" for a step without training)
  std::vector<std::string> notes;  // what the phase showed, one line each
  std::string samples_title;
  std::vector<report::Sample> samples;
};

// One example with its image read from `image_path` and inlined as a small PNG; verdict: 1 right,
// 0 wrong, -1 not judged.
report::Sample demo_image_sample(const std::string& image_path, const std::string& prompt, const std::string& expected,
                                 const std::string& answer, int verdict = -1);

class DemoReport {
 public:
  // Refuses a `path` that holds a file other than a tinyvlm report.
  explicit DemoReport(std::string path);
  // Adds the phase's section and rewrites the page.
  void add(const DemoPhase& phase);
  // Lines at the top of the page (the demo's outcome); rewrites the page.
  void set_summary(const std::vector<std::string>& lines);
  const std::string& path() const { return path_; }

 private:
  void write();
  std::string path_;
  report::Report page_;
};

}  // namespace tv::cli
