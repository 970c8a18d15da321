#include "report/html_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <cctype>
#include <set>

#include "core/error.h"
#include "io/atomic_file.h"
#include "report/html_text.h"

namespace tv::report {
namespace fs = std::filesystem;

const std::vector<PlotRow>& plot_rows() {
  static const std::vector<PlotRow> rows = {
      {"loss", "Loss", "loss", {"loss", "val_loss", "val_token_loss"}, YScale::Auto, false},
      {"lr", "Learning rate", "lr", {"lr"}, YScale::Linear, false},
      {"aux", "MoE aux loss", "aux loss", {"aux", "val_aux"}, YScale::Auto, false},
      {"ppl", "Perplexity", "perplexity", {"ppl", "val_ppl"}, YScale::Auto, false},
      {"throughput", "Throughput", "tokens/s", {"tok_per_s"}, YScale::Linear, true},
      {"grad_norm", "Gradient norm (before clipping)", "norm", {"grad_norm"}, YScale::Auto, false},
      // Preference tuning (DPO): share of pairs with a positive margin, implicit rewards, their margin.
      {"accuracy", "Preference accuracy", "accuracy", {"accuracy", "val_accuracy"}, YScale::Unit, false},
      {"rewards", "Rewards", "reward",
       {"chosen_reward", "rejected_reward", "val_chosen_reward", "val_rejected_reward"}, YScale::Linear, false},
      {"margin", "Reward margin", "margin", {"margin", "val_margin"}, YScale::Linear, false},
      {"seq", "Padded sequence length", "tokens", {"seq"}, YScale::Linear, false},
      // Data-parallel runs: this rank's time in collectives and bytes sent per step.
      {"comm_s", "Time in collectives", "s", {"comm_s"}, YScale::Linear, true},
      {"comm_bytes", "Bytes sent", "bytes", {"comm_bytes"}, YScale::Linear, false},
  };
  return rows;
}

const std::vector<std::string>& hidden_keys() {
  static const std::vector<std::string> keys = {"ce"};
  return keys;
}

std::vector<PlotRow> plots_for(const std::vector<RunMetrics>& runs) {
  auto present = [&](const std::string& k) {
    return std::any_of(runs.begin(), runs.end(), [&](const RunMetrics& r) { return r.has(k); });
  };
  std::vector<PlotRow> out;
  std::set<std::string> covered(hidden_keys().begin(), hidden_keys().end());
  for (const PlotRow& row : plot_rows()) {
    PlotRow r = row;
    r.keys.clear();
    for (const std::string& k : row.keys) {
      covered.insert(k);
      if (present(k)) r.keys.push_back(k);
    }
    if (!r.keys.empty()) out.push_back(r);
  }
  std::set<std::string> others;
  for (const RunMetrics& r : runs)
    for (const auto& [k, s] : r.series)
      if (!covered.count(k)) others.insert(k);
  // An unknown training key and its validation variant share a plot.
  for (const std::string& k : others) {
    if (k.rfind("val_", 0) == 0 && others.count(k.substr(4))) continue;
    PlotRow r;
    r.id = "other-" + k;
    r.title = k;
    r.y_label = k;
    r.keys = {k};
    if (others.count("val_" + k)) r.keys.push_back("val_" + k);
    r.scale = YScale::Linear;
    out.push_back(r);
  }
  return out;
}

namespace {

const char* kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                          "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
const char* kDashes[] = {"", "7 4", "2 3", "9 3 2 3"};

std::string fmt(double v) {
  if (!std::isfinite(v)) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

std::string id_safe(const std::string& s) {
  std::string out;
  for (char c : s) out += std::isalnum((unsigned char)c) || c == '-' || c == '_' ? c : '_';
  return out;
}

// "val_loss 6.577 -> 0.6503 (best 0.6412 at step 250)" for one validation key of a run, "" if absent.
std::string val_summary(const RunMetrics& r, const std::string& key, bool higher_is_better) {
  auto it = r.series.find(key);
  if (it == r.series.end()) return "";
  const Series& s = it->second;
  double first = NAN, last = NAN, best = NAN, best_step = 0;
  for (size_t i = 0; i < s.value.size(); ++i) {
    const double v = s.value[i];
    if (!std::isfinite(v)) continue;
    if (std::isnan(first)) first = v;
    last = v;
    if (std::isnan(best) || (higher_is_better ? v > best : v < best)) {
      best = v;
      best_step = s.step[i];
    }
  }
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.0f", best_step);
  return key + " " + fmt(first) + " &rarr; " + fmt(last) + " (best " + fmt(best) + " at step " + buf + ")";
}

std::string last_value(const RunMetrics& r, const std::string& key) {
  auto it = r.series.find(key);
  if (it == r.series.end()) return "";
  for (size_t i = it->second.value.size(); i-- > 0;)
    if (std::isfinite(it->second.value[i])) return fmt(it->second.value[i]);
  return "n/a";
}

std::string runs_table(const std::vector<RunMetrics>& runs) {
  std::string h = "<table class=\"runs\"><tr><th>run</th><th>phase</th><th>steps</th><th>last train loss</th>"
                  "<th>validation</th><th>file</th></tr>\n";
  for (size_t i = 0; i < runs.size(); ++i) {
    const RunMetrics& r = runs[i];
    std::vector<std::string> notes;
    if (r.lines == 0) notes.push_back("no metrics yet");
    if (r.bad_lines)
      notes.push_back(str_cat(r.bad_lines, " malformed line(s) skipped (first: line ", r.first_bad_line, ", ",
                              html_escape(r.first_bad_reason), ")"));
    if (r.nonfinite_values) notes.push_back(str_cat(r.nonfinite_values, " non-finite value(s), left as gaps"));
    if (r.skipped_batches) notes.push_back(str_cat(r.skipped_batches, " batch(es) skipped for a non-finite loss or gradient"));
    std::string val;
    for (const auto& [key, higher] : {std::pair<const char*, bool>{"val_loss", false}, {"val_accuracy", true}}) {
      const std::string v = val_summary(r, key, higher);
      if (!v.empty()) val += (val.empty() ? "" : "<br>") + v;  // built from escaped parts: key names are ours
    }
    std::string swatch = runs.size() > 1 ? "<span class=\"swatch\" style=\"background:" + std::string(kPalette[i % 10]) + "\"></span>" : "";
    h += "<tr><td>" + swatch + html_escape(r.label) + "</td><td>" + html_escape(r.phase) + "</td><td>" +
         (r.last_step >= 0 ? std::to_string(r.last_step) : "") + "</td><td>" + last_value(r, "loss") + "</td><td>" + val +
         "</td><td class=\"path\">" + html_escape(r.source);
    for (const std::string& n : notes) h += "<br><span class=\"warn\">" + n + "</span>";
    h += "</td></tr>\n";
  }
  return h + "</table>\n";
}

std::string plots_html(const std::vector<RunMetrics>& runs, const std::string& id_prefix) {
  std::string h = "<div class=\"plots\">\n";
  const bool overlay = runs.size() > 1;
  const std::vector<PlotRow> rows = plots_for(runs);
  for (size_t pi = 0; pi < rows.size(); ++pi) {
    const PlotRow& row = rows[pi];
    std::vector<PlotLine> lines;
    for (size_t ri = 0; ri < runs.size(); ++ri)
      for (size_t ki = 0; ki < row.keys.size(); ++ki) {
        auto it = runs[ri].series.find(row.keys[ki]);
        if (it == runs[ri].series.end()) continue;
        PlotLine l;
        const std::string& key = row.keys[ki];
        l.label = overlay ? runs[ri].label + ": " + key : key;
        l.colour = kPalette[(overlay ? ri : ki) % 10];
        l.dash = overlay ? kDashes[ki % 4] : (key.rfind("val_", 0) == 0 ? kDashes[1] : "");
        l.markers = key.rfind("val_", 0) == 0;
        if (row.smooth)
          downsample(it->second.step, it->second.value, std::min<size_t>(100, std::max<size_t>(4, it->second.step.size() / 5)),
                     true, l.x, l.y);
        else {
          l.x = it->second.step;
          l.y = it->second.value;
        }
        lines.push_back(std::move(l));
      }
    PlotSpec spec;
    spec.id = id_safe(id_prefix + "-" + std::to_string(pi) + "-" + row.id);  // unique even if two keys sanitise alike
    spec.title = row.title;
    spec.y_label = row.y_label;
    spec.scale = row.scale;
    if (row.id == "lr") spec.height = 200;
    h += render_svg_plot(spec, lines);
  }
  return h + "</div>\n";
}

std::string samples_html(const Section& s) {
  if (s.samples.empty()) return "";
  bool any_image = false, any_prompt = false, any_expected = false, any_verdict = false;
  for (const Sample& x : s.samples) {
    any_image |= !x.png.empty() || !x.image_name.empty();
    any_prompt |= !x.prompt.empty();
    any_expected |= !x.expected.empty();
    any_verdict |= x.verdict >= 0;
  }
  std::string h = "<h3>" + html_escape(s.samples_title.empty() ? "Samples" : s.samples_title) + "</h3>\n<table class=\"samples\"><tr>";
  if (any_image) h += "<th>image</th>";
  if (any_prompt) h += "<th>prompt</th>";
  if (any_expected) h += "<th>expected</th>";
  h += "<th>model</th>";
  if (any_verdict) h += "<th></th>";
  h += "</tr>\n";
  // Consecutive samples of one image share its cell (several questions about one picture).
  auto same_image = [&](size_t i, size_t j) {
    return !s.samples[i].image_name.empty() && s.samples[i].image_name == s.samples[j].image_name &&
           s.samples[i].png == s.samples[j].png;
  };
  for (size_t i = 0; i < s.samples.size(); ++i) {
    const Sample& x = s.samples[i];
    h += "<tr>";
    if (any_image && !(i > 0 && same_image(i, i - 1))) {
      size_t span = 1;
      while (i + span < s.samples.size() && same_image(i, i + span)) ++span;
      h += span > 1 ? "<td class=\"img\" rowspan=\"" + std::to_string(span) + "\">" : "<td class=\"img\">";
      if (!x.png.empty())
        h += "<img alt=\"" + html_escape(x.image_name) + "\" width=\"96\" height=\"96\" src=\"" + data_url("image/png", x.png) + "\">";
      if (!x.image_name.empty()) h += "<div class=\"path\">" + html_escape(x.image_name) + "</div>";
      h += "</td>";
    }
    if (any_prompt) h += "<td>" + html_escape(x.prompt) + "</td>";
    if (any_expected) h += "<td>" + html_escape(x.expected) + "</td>";
    h += "<td class=\"answer\">" + html_escape(x.answer) + "</td>";
    if (any_verdict)
      h += x.verdict < 0 ? "<td></td>" : x.verdict ? "<td class=\"ok\">right</td>" : "<td class=\"bad\">wrong</td>";
    h += "</tr>\n";
  }
  return h + "</table>\n";
}

const char* kStyle = R"(body{font-family:"DejaVu Sans",Helvetica,Arial,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{font-size:22px;margin:0 0 6px}h2{font-size:18px;margin:28px 0 6px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:16px 0 6px}p{margin:4px 0}.note{color:#444}
.plots{display:flex;flex-wrap:wrap;gap:12px;margin:10px 0}svg.plot{background:#fff;border:1px solid #ddd}
table{border-collapse:collapse;background:#fff;font-size:13px;margin:6px 0}
td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:middle}th{background:#f0f0f0}
.path{color:#777;font-size:11px;word-break:break-all}.warn{color:#b35900}
.swatch{display:inline-block;width:12px;height:12px;margin-right:6px;vertical-align:middle}
td.img img{image-rendering:pixelated;display:block}.answer{font-family:"DejaVu Sans Mono",monospace}
.ok{color:#1a7f37;font-weight:bold}.bad{color:#c62828;font-weight:bold}
)";

}  // namespace

std::string render_html(const Report& r) {
  std::string h = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n" + std::string(kGeneratorTag) + "\n<title>" +
                  html_escape(r.title) + "</title>\n<style>\n" + kStyle + "</style>\n</head>\n<body>\n<h1>" +
                  html_escape(r.title) + "</h1>\n";
  for (const std::string& n : r.notes) h += "<p class=\"note\">" + html_escape(n) + "</p>\n";
  for (size_t i = 0; i < r.sections.size(); ++i) {
    const Section& s = r.sections[i];
    h += "<section>\n";
    if (!s.title.empty()) h += "<h2>" + html_escape(s.title) + "</h2>\n";
    for (const std::string& n : s.notes) h += "<p class=\"note\">" + html_escape(n) + "</p>\n";
    if (!s.runs.empty()) {
      h += runs_table(s.runs);
      h += plots_html(s.runs, "s" + std::to_string(i));
    }
    h += samples_html(s);
    h += "</section>\n";
  }
  return h + "</body>\n</html>\n";
}

void write_report(const std::string& path, const Report& r) { write_file_atomic(path, render_html(r)); }

bool is_generated_report(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  char head[512];
  const size_t n = std::fread(head, 1, sizeof head, f);
  std::fclose(f);
  return std::string_view(head, n).find(kGeneratorTag) != std::string_view::npos;
}

std::string write_run_report(const std::string& run_dir) {
  const std::string metrics = (fs::path(run_dir) / "metrics.jsonl").string();
  Report r;
  Section s;
  std::error_code ec;
  s.runs.push_back(fs::exists(metrics, ec) ? read_metrics(metrics, BadLines::Skip) : parse_metrics("", metrics));
  const RunMetrics& m = s.runs.back();
  r.title = "tinyvlm run " + m.label + (m.phase.empty() ? "" : " (" + m.phase + ")");
  if (m.last_step >= 0) r.notes.push_back("up to step " + std::to_string(m.last_step) + " of " + metrics);
  r.sections.push_back(std::move(s));
  const std::string out = (fs::path(run_dir) / "report.html").string();
  if (fs::exists(out, ec) && !is_generated_report(out))
    fail(out, ": exists and is not a tinyvlm report; not replaced (move it away to get the run's report)");
  write_report(out, r);
  return out;
}

}  // namespace tv::report
