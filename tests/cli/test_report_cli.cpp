// `tinyvlm report`: rebuilds a run's report.html, overlays runs, names malformed metrics lines by file and
// line (or skips and counts them when asked), and never overwrites a file that is not a report.
#include <unistd.h>
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>

#include "io/atomic_file.h"
#include "report/html_report.h"

namespace fs = std::filesystem;

namespace {

struct Result {
  int code = -1;
  std::string out;
};

Result run(const std::string& args) {
  Result r;
  FILE* p = popen((std::string(TV_TINYVLM_BIN) + " " + args + " 2>&1").c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

struct Runs {
  fs::path dir = fs::temp_directory_path() / ("tinyvlm_report_cli_" + std::to_string(getpid()));
  Runs() {
    fs::remove_all(dir);
    for (const char* r : {"run_a", "run_b", "dpo"}) {
      fs::create_directories(dir / r);
      fs::copy_file(fs::path(TV_FIXTURE_DIR) / "report" / r / "metrics.jsonl", dir / r / "metrics.jsonl");
    }
  }
  ~Runs() { fs::remove_all(dir); }
  std::string operator/(const std::string& s) const { return (dir / s).string(); }
};

}  // namespace

TEST(ReportCli, HasHelp) {
  Result r = run("report --help");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("Usage"), std::string::npos) << r.out;
  EXPECT_NE(run("--help").out.find("report"), std::string::npos);
}

TEST(ReportCli, RebuildsOneRunAndOverlaysSeveral) {
  Runs d;
  Result one = run("report " + (d / "run_a"));
  ASSERT_EQ(one.code, 0) << one.out;
  EXPECT_TRUE(tv::report::is_generated_report(d / "run_a/report.html"));
  Result many = run("report " + (d / "run_a") + " " + (d / "run_b") + " " + (d / "dpo/metrics.jsonl") + " --out " + (d / "all.html"));
  ASSERT_EQ(many.code, 0) << many.out;
  EXPECT_NE(many.out.find("3 run(s)"), std::string::npos) << many.out;
  const std::string html = tv::read_file(d / "all.html");
  for (const char* s : {"run_a: loss", "run_b: loss", "dpo: loss", "dpo: val_accuracy", "Rewards", "seq_tokens"})
    EXPECT_NE(html.find(s), std::string::npos) << s;
  // Two runs of the same folder name are told apart by their paths.
  fs::create_directories(d.dir / "other");
  fs::copy(d.dir / "run_a", d.dir / "other" / "run_a");
  Result same = run("report " + (d / "run_a") + " " + (d / "other/run_a") + " --out " + (d / "same.html"));
  ASSERT_EQ(same.code, 0) << same.out;
  EXPECT_NE(tv::read_file(d / "same.html").find((d / "other/run_a") + ": loss"), std::string::npos);
}

TEST(ReportCli, ClearErrors) {
  Runs d;
  Result no_out = run("report " + (d / "run_a") + " " + (d / "run_b"));
  EXPECT_NE(no_out.code, 0);
  EXPECT_NE(no_out.out.find("--out"), std::string::npos) << no_out.out;
  Result missing = run("report " + (d / "nowhere"));
  EXPECT_NE(missing.code, 0);
  EXPECT_NE(missing.out.find("nowhere"), std::string::npos) << missing.out;
  fs::create_directories(d.dir / "empty");
  Result empty = run("report " + (d / "empty"));
  EXPECT_NE(empty.code, 0);
  EXPECT_NE(empty.out.find("no metrics.jsonl"), std::string::npos) << empty.out;

  // A malformed line: named by file and line; --skip-bad-lines skips and counts it.
  std::string text = tv::read_file(d / "run_b/metrics.jsonl");
  const size_t third = text.find('\n', text.find('\n') + 1) + 1;
  text.insert(third, "{\"step\": \"x\"}\n");
  tv::write_file_atomic(d / "run_b/metrics.jsonl", text);
  Result bad = run("report " + (d / "run_b"));
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.out.find("run_b/metrics.jsonl:3:"), std::string::npos) << bad.out;
  EXPECT_FALSE(fs::exists(d / "run_b/report.html"));
  Result skip = run("report " + (d / "run_b") + " --skip-bad-lines");
  ASSERT_EQ(skip.code, 0) << skip.out;
  EXPECT_NE(skip.out.find("skipped 1 malformed line(s) (first: line 3"), std::string::npos) << skip.out;
  EXPECT_NE(tv::read_file(d / "run_b/report.html").find("1 malformed line(s) skipped"), std::string::npos);

  // A file that is not a report is not overwritten without --force.
  tv::write_file_atomic(d / "notes.html", "my notes");
  Result refuse = run("report " + (d / "run_a") + " --out " + (d / "notes.html"));
  EXPECT_NE(refuse.code, 0);
  EXPECT_NE(refuse.out.find("--force"), std::string::npos) << refuse.out;
  EXPECT_EQ(tv::read_file(d / "notes.html"), "my notes");
  Result force = run("report " + (d / "run_a") + " --out " + (d / "notes.html") + " --force");
  EXPECT_EQ(force.code, 0) << force.out;
  EXPECT_TRUE(tv::report::is_generated_report(d / "notes.html"));
  Result folder = run("report " + (d / "run_a") + " --out " + d.dir.string());
  EXPECT_NE(folder.code, 0);
  EXPECT_NE(folder.out.find("is a folder"), std::string::npos) << folder.out;
}
