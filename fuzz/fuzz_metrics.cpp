// metrics.jsonl as the report reads it (any bytes: lines skipped and counted), then the whole page built
// from it: axes, ticks and SVG for whatever values, steps and keys the lines hold. A page must always come
// out, end as HTML does, and hold no unescaped markup from the input.
#include <cstdint>
#include <string>

#include "core/error.h"
#include "report/html_report.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  tv::report::RunMetrics m = tv::report::parse_metrics(text, "fuzz/metrics.jsonl", tv::report::BadLines::Skip);
  try {
    tv::report::parse_metrics(text, "fuzz/metrics.jsonl", tv::report::BadLines::Fail);
    if (m.bad_lines) __builtin_trap();  // the strict reader accepted what the lenient one skipped
  } catch (const tv::Error&) {
    if (!m.bad_lines) __builtin_trap();
  }
  tv::report::Report r;
  r.title = "fuzz";
  r.sections.push_back({"run", {}, {m, m}, "", {}});  // overlaid too
  const std::string html = tv::report::render_html(r);
  if (html.size() < 8 || html.compare(html.size() - 8, 8, "</html>\n") != 0) __builtin_trap();
  if (html.find("<script") != std::string::npos) __builtin_trap();
  return 0;
}
