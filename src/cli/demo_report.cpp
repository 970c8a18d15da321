#include "cli/demo_report.h"

#include <filesystem>

#include "core/error.h"
#include "data/image.h"
#include "data/png_encode.h"

namespace tv::cli {
namespace fs = std::filesystem;

report::Sample demo_image_sample(const std::string& image_path, const std::string& prompt, const std::string& expected,
                                 const std::string& answer, int verdict) {
  report::Sample s;
  s.image_name = fs::path(image_path).filename().string();
  s.png = encode_png_thumbnail(decode_image_file(image_path), 96);
  s.prompt = prompt;
  s.expected = expected;
  s.answer = answer;
  s.verdict = verdict;
  return s;
}

DemoReport::DemoReport(std::string path) : path_(std::move(path)) {
  std::error_code ec;  // refused before any work, not after the phases
  if (fs::exists(path_, ec) && !report::is_generated_report(path_))
    fail(path_, ": exists and is not a tinyvlm report; not overwritten (move it away)");
}

void DemoReport::add(const DemoPhase& phase) {
  report::Section s;
  s.title = phase.title;
  s.notes = phase.notes;
  if (!phase.run_dir.empty()) s.runs.push_back(report::read_metrics(phase.run_dir, report::BadLines::Skip));
  s.samples_title = phase.samples_title;
  s.samples = phase.samples;
  page_.sections.push_back(std::move(s));
  write();
}

void DemoReport::set_summary(const std::vector<std::string>& lines) {
  page_.notes = lines;
  write();
}

void DemoReport::write() {
  if (page_.title.empty()) page_.title = "tinyvlm demo";
  report::write_report(path_, page_);
}

}  // namespace tv::cli
