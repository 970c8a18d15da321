#include "report/metrics_reader.h"

#include <cmath>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/atomic_file.h"

namespace tv::report {
namespace fs = std::filesystem;

std::string run_label(const std::string& metrics_path) {
  fs::path p = fs::path(metrics_path).lexically_normal();
  if (p.filename() == "metrics.jsonl" || p.filename().empty()) p = p.parent_path();
  if (p.filename().empty()) p = p.parent_path();  // "runs/x/"
  std::string name = p.filename().string();
  if (name.empty() || name == ".") name = fs::absolute(p).lexically_normal().filename().string();
  return name.empty() ? metrics_path : name;
}

namespace {

// Why a parsed line is unusable, or "" when it is fine.
std::string line_problem(const nlohmann::json& j) {
  if (j.is_discarded()) return "not valid JSON";
  if (!j.is_object()) return "not a JSON object";
  auto it = j.find("step");
  if (it == j.end()) return "no \"step\"";
  if (!it->is_number_integer()) return "\"step\" is not an integer";
  if (it->get<int64_t>() < 0) return "\"step\" is negative";
  for (const char* k : {"phase", "split", "event"}) {
    auto s = j.find(k);
    if (s != j.end() && !s->is_string()) return str_cat("\"", k, "\" is not a string");
  }
  return "";
}

}  // namespace

RunMetrics parse_metrics(std::string_view text, const std::string& source, BadLines bad) {
  RunMetrics m;
  m.source = source;
  m.label = run_label(source);
  int64_t line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    ++m.lines;
    const nlohmann::json j = nlohmann::json::parse(line.begin(), line.end(), nullptr, false);
    const std::string problem = line_problem(j);
    if (!problem.empty()) {
      if (bad == BadLines::Fail)
        fail(source, ":", line_no, ": malformed metrics line (", problem,
             "); expected one JSON object with an integer \"step\" per line");
      if (m.bad_lines++ == 0) {
        m.first_bad_line = line_no;
        m.first_bad_reason = problem;
      }
      continue;
    }
    const int64_t step = j["step"].get<int64_t>();
    m.last_step = std::max(m.last_step, step);
    if (m.phase.empty() && j.contains("phase")) m.phase = j["phase"].get<std::string>();
    if (j.contains("event")) {
      if (j["event"].get<std::string>() == "skipped_nonfinite_batch") ++m.skipped_batches;
      continue;
    }
    const bool val = j.value("split", "") == "val";
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string& key = it.key();
      if (key == "step") continue;
      double v;
      if (it->is_number())
        v = it->get<double>();
      else if (it->is_null())
        v = std::numeric_limits<double>::quiet_NaN();
      else
        continue;  // strings (phase, split), flags and nested values are not series
      if (!std::isfinite(v)) ++m.nonfinite_values;
      Series& s = m.series[val && key.rfind("val_", 0) != 0 ? "val_" + key : key];
      s.step.push_back(double(step));
      s.value.push_back(v);
    }
  }
  return m;
}

RunMetrics read_metrics(const std::string& path, BadLines bad) {
  std::error_code ec;
  const std::string file = fs::is_directory(path, ec) ? (fs::path(path) / "metrics.jsonl").string() : path;
  if (!fs::exists(file, ec)) {
    if (file != path) fail(path, ": no metrics.jsonl in this folder (is it a run folder?)");
    fail(path, ": no such file");
  }
  return parse_metrics(read_file(file), file, bad);
}

}  // namespace tv::report
