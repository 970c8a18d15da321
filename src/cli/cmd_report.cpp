// `tinyvlm report RUN_DIR... [--out F]`: rebuilds report.html (report/html_report.h) from the runs'
// metrics.jsonl; several runs are overlaid, one colour per run. See docs/report.md.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <set>

#include "cli/commands.h"
#include "core/error.h"
#include "report/html_report.h"

namespace tv::cli {
namespace {
namespace fs = std::filesystem;

struct ReportArgs {
  std::vector<std::string> runs;
  std::string out, title;
  bool skip_bad_lines = false, force = false;
};

void run_report(const ReportArgs& a) {
  if (a.runs.size() > 1 && a.out.empty())
    fail("report: ", a.runs.size(), " runs are overlaid into one page: say where with --out F");
  std::string out = a.out;
  if (out.empty()) {
    std::error_code ec;
    out = (fs::is_directory(a.runs[0], ec) ? fs::path(a.runs[0]) : fs::path(a.runs[0]).parent_path()) / "report.html";
  }
  std::error_code ec;
  if (fs::is_directory(out, ec)) fail("--out ", out, ": is a folder; name the file to write (e.g. ", (fs::path(out) / "report.html").string(), ")");
  if (fs::exists(out, ec) && !a.force && !report::is_generated_report(out))
    fail("--out ", out, ": exists and is not a tinyvlm report; not overwritten (--force replaces it)");

  report::Section section;
  for (const std::string& run : a.runs) {
    section.runs.push_back(report::read_metrics(run, a.skip_bad_lines ? report::BadLines::Skip : report::BadLines::Fail));
    const report::RunMetrics& m = section.runs.back();
    if (m.bad_lines)
      std::fprintf(stderr, "report: %s: skipped %lld malformed line(s) (first: line %lld, %s)\n", m.source.c_str(),
                   (long long)m.bad_lines, (long long)m.first_bad_line, m.first_bad_reason.c_str());
    if (m.lines == 0) std::fprintf(stderr, "report: %s: no metrics yet\n", m.source.c_str());
  }
  // Runs of the same folder name (a/pretrain, b/pretrain) are told apart by their paths as given.
  std::set<std::string> seen, dup;
  for (const auto& m : section.runs)
    if (!seen.insert(m.label).second) dup.insert(m.label);
  for (size_t i = 0; i < section.runs.size(); ++i)
    if (dup.count(section.runs[i].label)) section.runs[i].label = a.runs[i];

  report::Report r;
  if (!a.title.empty())
    r.title = a.title;
  else if (section.runs.size() == 1)
    r.title = "tinyvlm run " + section.runs[0].label + (section.runs[0].phase.empty() ? "" : " (" + section.runs[0].phase + ")");
  else
    r.title = "tinyvlm: " + std::to_string(section.runs.size()) + " runs";
  const size_t plots = report::plots_for(section.runs).size();
  r.sections.push_back(std::move(section));
  report::write_report(out, r);
  std::fprintf(stderr, "wrote %s (%zu run(s), %zu plot(s))\n", out.c_str(), a.runs.size(), plots);
}

}  // namespace

void add_report_command(CLI::App& app) {
  auto a = std::make_shared<ReportArgs>();
  CLI::App* cmd = app.add_subcommand("report", "Rebuild report.html (plots of metrics.jsonl) of one run, or overlay several");
  cmd->add_option("runs", a->runs, "Run folders (or their metrics.jsonl files)")->required();
  cmd->add_option("--out", a->out, "The page to write (default: RUN_DIR/report.html; needed for several runs)");
  cmd->add_option("--title", a->title, "The page's title");
  cmd->add_flag("--skip-bad-lines", a->skip_bad_lines,
                "Skip and count malformed metrics lines instead of stopping at the first (named by file and line)");
  cmd->add_flag("--force", a->force, "Replace an --out file that is not a tinyvlm report");
  cmd->callback([a] { run_report(*a); });
}

}  // namespace tv::cli
