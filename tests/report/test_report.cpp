// The report: metrics.jsonl reading (series, validation keys, gaps, malformed lines), axes (round ticks,
// log scale only where it helps), the SVG plot, the page (escaping, overlay colours, inline images, no
// external resource) and the training loop's report.html.
#include <unistd.h>
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <filesystem>
#include <regex>
#include <set>

#include "core/error.h"
#include "data/image.h"
#include "data/png_encode.h"
#include "io/atomic_file.h"
#include "report/html_report.h"
#include "report/html_text.h"
#include "train/trainer.h"

using namespace tv;
using namespace tv::report;
namespace fs = std::filesystem;

namespace {

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + what.size())) ++n;
  return n;
}

fs::path fresh_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("tinyvlm_report_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

const char* kMetrics =
    R"({"phase":"pretrain","split":"val","step":0,"val_loss":6.5,"val_aux":2.1}
{"aux":2.1,"ce":6.4,"grad_norm":2.5,"loss":6.6,"lr":0.0,"phase":"pretrain","split":"train","step":1,"tok_per_s":900}

{"aux":2.0,"ce":5.0,"grad_norm":null,"loss":5.1,"lr":0.001,"phase":"pretrain","split":"train","step":2,"tok_per_s":1000}
{"step":2,"phase":"pretrain","event":"skipped_nonfinite_batch","cause":"loss"}
{"phase":"pretrain","split":"val","step":2,"loss":4.0}
)";

}  // namespace

TEST(ReportText, HtmlEscapeCoversMarkupQuotesAndControlCharacters) {
  EXPECT_EQ(html_escape("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;");
  EXPECT_EQ(html_escape("a\tb\nc"), "a\tb\nc");
  EXPECT_EQ(html_escape(std::string("a\0b", 3)), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(html_escape("caf\xC3\xA9"), "caf\xC3\xA9");  // UTF-8 passes through
}

TEST(ReportText, Base64MatchesRfc4648Vectors) {
  const std::pair<const char*, const char*> v[] = {{"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},
                                                   {"foo", "Zm9v"},  {"foob", "Zm9vYg=="},  {"fooba", "Zm9vYmE="},
                                                   {"foobar", "Zm9vYmFy"}};
  for (auto& [in, out] : v) EXPECT_EQ(base64_encode(in), out) << in;
  EXPECT_EQ(base64_encode(std::string("\xff\x00\xfe", 3)), "/wD+");
  EXPECT_EQ(data_url("image/png", "foo"), "data:image/png;base64,Zm9v");
}

TEST(ReportMetrics, SeriesByKeyValidationPrefixedGapsAndEventsCounted) {
  RunMetrics m = parse_metrics(kMetrics, "runs/x/metrics.jsonl");
  EXPECT_EQ(m.label, "x");
  EXPECT_EQ(m.phase, "pretrain");
  EXPECT_EQ(m.lines, 5);  // the blank line is not one
  EXPECT_EQ(m.bad_lines, 0);
  EXPECT_EQ(m.last_step, 2);
  EXPECT_EQ(m.skipped_batches, 1);
  EXPECT_EQ(m.nonfinite_values, 1);
  ASSERT_TRUE(m.has("loss"));
  EXPECT_EQ(m.series["loss"].step, (std::vector<double>{1, 2}));
  EXPECT_EQ(m.series["loss"].value, (std::vector<double>{6.6, 5.1}));
  // A validation key logged without the prefix gets it.
  EXPECT_EQ(m.series["val_loss"].step, (std::vector<double>{0, 2}));
  EXPECT_EQ(m.series["val_loss"].value, (std::vector<double>{6.5, 4.0}));
  ASSERT_EQ(m.series["grad_norm"].value.size(), 2u);
  EXPECT_TRUE(std::isnan(m.series["grad_norm"].value[1]));  // null: a gap, not a dropped point
  EXPECT_FALSE(m.has("phase"));
  EXPECT_FALSE(m.has("step"));
  EXPECT_FALSE(m.has("cause"));
}

TEST(ReportMetrics, MalformedLinesFailNamingFileAndLineOrAreSkippedAndCounted) {
  const std::string text = std::string(kMetrics) + "{\"loss\": 1}\n{\"step\": 2.5}\nnot json\n[1,2]\n{\"step\":-1}\n{\"step\":3,\"split\":1}\n";
  try {
    parse_metrics(text, "runs/x/metrics.jsonl");
    FAIL() << "a malformed line was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("runs/x/metrics.jsonl:7:"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("no \"step\""), std::string::npos) << e.what();
  }
  RunMetrics m = parse_metrics(text, "m.jsonl", BadLines::Skip);
  EXPECT_EQ(m.bad_lines, 6);
  EXPECT_EQ(m.first_bad_line, 7);
  EXPECT_EQ(m.first_bad_reason, "no \"step\"");
  EXPECT_EQ(m.series["loss"].value.size(), 2u);  // the good lines are all there
  // A torn last line (a run killed mid-write) is one more bad line.
  RunMetrics torn = parse_metrics(std::string(kMetrics) + "{\"step\":3,\"lo", "m.jsonl", BadLines::Skip);
  EXPECT_EQ(torn.bad_lines, 1);
  // Empty input: no lines, no series.
  RunMetrics empty = parse_metrics("", "m.jsonl");
  EXPECT_EQ(empty.lines, 0);
  EXPECT_TRUE(empty.series.empty());
  EXPECT_EQ(empty.last_step, -1);
}

TEST(ReportMetrics, ReadsAFolderOrAFileAndNamesAMissingOne) {
  fs::path d = fresh_dir("read");
  write_file_atomic((d / "metrics.jsonl").string(), kMetrics);
  EXPECT_EQ(read_metrics(d.string()).series.size(), read_metrics((d / "metrics.jsonl").string()).series.size());
  fs::create_directories(d / "empty");
  try {
    read_metrics((d / "empty").string());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no metrics.jsonl"), std::string::npos) << e.what();
  }
  fs::remove_all(d);
}

TEST(ReportAxis, LinearTicksAreRoundAndCoverTheRange) {
  for (auto [lo, hi] : {std::pair{0.3, 9.4}, {-2.5, 7.1}, {1e-4, 3e-4}, {0.0, 300.0}, {1234.0, 98765.0}}) {
    Axis a = linear_axis(lo, hi);
    EXPECT_FALSE(a.log);
    EXPECT_LE(a.lo, lo);
    EXPECT_GE(a.hi, hi);
    ASSERT_GE(a.ticks.size(), 3u) << lo << " " << hi;
    EXPECT_LE(a.ticks.size(), 12u) << lo << " " << hi;
    const double step = a.ticks[1] - a.ticks[0];
    const double mant = step / std::pow(10.0, std::floor(std::log10(step) + 1e-9));
    EXPECT_TRUE(std::abs(mant - 1) < 1e-6 || std::abs(mant - 2) < 1e-6 || std::abs(mant - 5) < 1e-6) << step;
    EXPECT_NEAR(a.ticks.front(), a.lo, step * 1e-6);
    EXPECT_NEAR(a.ticks.back(), a.hi, step * 1e-6);
  }
  Axis one = linear_axis(5, 5);  // one point: widened around it
  EXPECT_LT(one.lo, 5);
  EXPECT_GT(one.hi, 5);
  Axis zero = linear_axis(0, 0);
  EXPECT_LT(zero.lo, 0);
  EXPECT_GT(zero.hi, 0);
  EXPECT_EQ(linear_axis(0, 1).ticks.front(), 0.0);
}

TEST(ReportAxis, LogScaleOnlyForWidePositiveRanges) {
  EXPECT_TRUE(value_axis({9.2, 0.3}, YScale::Auto).log);                  // 30x
  EXPECT_FALSE(value_axis({2.4, 1.9}, YScale::Auto).log);                 // narrow
  EXPECT_FALSE(value_axis({9.2, 0.0, 0.3}, YScale::Auto).log);            // a zero
  EXPECT_FALSE(value_axis({-1, 100}, YScale::Auto).log);                  // a negative
  EXPECT_FALSE(value_axis({1e-5, 1e-3}, YScale::Linear).log);             // not allowed
  EXPECT_TRUE(value_axis({NAN, 5000, INFINITY, 2}, YScale::Auto).log);    // non-finite ignored
  Axis l = log_axis(0.65, 6.6);
  EXPECT_TRUE(l.log);
  EXPECT_DOUBLE_EQ(l.lo, 0.5);
  EXPECT_DOUBLE_EQ(l.hi, 10);
  EXPECT_EQ(l.ticks, (std::vector<double>{0.5, 1, 2, 5, 10}));
  Axis wide = log_axis(3e-5, 2e4);  // many decades: powers of ten only
  for (double t : wide.ticks) EXPECT_NEAR(std::log10(t), std::round(std::log10(t)), 1e-9) << t;
  Axis unit = value_axis({0.4, 0.6}, YScale::Unit);
  EXPECT_EQ(unit.lo, 0);
  EXPECT_EQ(unit.hi, 1);
  Axis none = value_axis({NAN}, YScale::Auto);  // nothing finite: still a usable axis
  EXPECT_LT(none.lo, none.hi);
}

TEST(ReportAxis, TickLabelsAreShort) {
  EXPECT_EQ(tick_label(0), "0");
  EXPECT_EQ(tick_label(0.1 + 0.2), "0.3");
  EXPECT_EQ(tick_label(0.0005), "5e-4");
  EXPECT_EQ(tick_label(2.5e-4), "2.5e-4");
  EXPECT_EQ(tick_label(2000), "2000");
  EXPECT_EQ(tick_label(1e6), "1e6");
  EXPECT_EQ(tick_label(-12.5), "-12.5");
  // An axis's labels never repeat, whatever its range.
  for (auto [lo, hi] : {std::pair{126.0, 128.0}, {0.3, 9.4}, {0.0005, 0.0021}, {1e5, 3e5}, {-1.0, 1.0}, {99990.0, 100010.0}}) {
    const std::vector<std::string> labels = tick_labels(linear_axis(lo, hi));
    EXPECT_EQ(std::set<std::string>(labels.begin(), labels.end()).size(), labels.size()) << lo << " " << hi;
  }
  EXPECT_EQ(tick_labels(linear_axis(126, 128)), (std::vector<std::string>{"126.0", "126.5", "127.0", "127.5", "128.0"}));
  EXPECT_EQ(tick_labels(linear_axis(0, 300))[1], "50");
}

TEST(ReportPlot, DownsamplingBoundsPointsAndKeepsSpikes) {
  std::vector<double> x, y;
  for (int i = 0; i < 10000; ++i) {
    x.push_back(i);
    y.push_back(i == 4321 ? 50.0 : 1.0 + 0.001 * (i % 7));
  }
  std::vector<double> ox, oy;
  downsample(x, y, 500, false, ox, oy);
  EXPECT_LE(ox.size(), 500u);
  EXPECT_GE(ox.size(), 200u);
  EXPECT_EQ(*std::max_element(oy.begin(), oy.end()), 50.0);  // the spike survives
  EXPECT_TRUE(std::is_sorted(ox.begin(), ox.end()));
  downsample(x, y, 100, true, ox, oy);
  EXPECT_EQ(ox.size(), 100u);
  EXPECT_LT(*std::max_element(oy.begin(), oy.end()), 2.0);  // means smooth it away
  downsample({1, 2}, {3, 4}, 100, false, ox, oy);             // short: unchanged
  EXPECT_EQ(oy, (std::vector<double>{3, 4}));
}

TEST(ReportPlot, SvgHasGapsMarkersEscapedLabelsAndSaysWhenEmpty) {
  PlotSpec spec;
  spec.id = "t";
  spec.title = "Loss <&>";
  PlotLine a{"train <a>", "#1f77b4", "", false, {1, 2, 3, 4, 5}, {5, 4, NAN, 2, 1}};
  PlotLine b{"one point", "#ff7f0e", "", false, {3}, {3}};
  std::string svg = render_svg_plot(spec, {a, b});
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("Loss &lt;&amp;&gt;"), std::string::npos);
  EXPECT_NE(svg.find("train &lt;a&gt;"), std::string::npos);
  EXPECT_EQ(svg.find("<a>"), std::string::npos);
  // The NaN splits the line into two pieces: two move-tos in its path.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(svg, m, std::regex("<path d=\"([^\"]*)\" stroke=\"#1f77b4\"")));
  EXPECT_EQ(count(m[1].str(), "M"), 2u);
  EXPECT_NE(svg.find("<circle"), std::string::npos);  // the single point is drawn as a dot
  EXPECT_NE(svg.find("#ff7f0e"), std::string::npos);
  EXPECT_EQ(svg.find("no data yet"), std::string::npos);
  EXPECT_EQ(svg.find("nan"), std::string::npos);  // no NaN coordinate written
  EXPECT_EQ(svg.find("inf"), std::string::npos);

  std::string empty = render_svg_plot(spec, {PlotLine{"x", "#000", "", false, {1, 2}, {NAN, NAN}}});
  EXPECT_NE(empty.find("no data yet"), std::string::npos);
  EXPECT_EQ(empty.find("<path"), std::string::npos);

  PlotLine wide{"wide", "#000", "", false, {1, 2, 3}, {9.4, 1.0, 0.3}};
  EXPECT_NE(render_svg_plot(spec, {wide}).find("(log scale)"), std::string::npos);
  spec.scale = YScale::Linear;
  EXPECT_EQ(render_svg_plot(spec, {wide}).find("(log scale)"), std::string::npos);
}

TEST(ReportPage, SeriesSelectionFollowsTheTableThenOtherKeys) {
  RunMetrics r;
  for (const char* k : {"loss", "val_loss", "lr", "ce", "accuracy", "chosen_reward", "foo", "val_foo", "val_bar"})
    r.series[k] = Series{{1}, {1}};
  std::vector<PlotRow> rows = plots_for({r});
  std::vector<std::string> ids;
  for (const PlotRow& p : rows) ids.push_back(p.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"loss", "lr", "accuracy", "rewards", "other-foo", "other-val_bar"}));
  EXPECT_EQ(rows[0].keys, (std::vector<std::string>{"loss", "val_loss"}));  // val_token_loss absent: dropped
  EXPECT_EQ(rows[3].keys, (std::vector<std::string>{"chosen_reward"}));
  EXPECT_EQ(rows[4].keys, (std::vector<std::string>{"foo", "val_foo"}));
  EXPECT_EQ(rows[2].scale, YScale::Unit);
  // Keys of another run join the same rows.
  RunMetrics dpo;
  dpo.series["val_accuracy"] = Series{{1}, {0.5}};
  EXPECT_EQ(plots_for({r, dpo})[2].keys, (std::vector<std::string>{"accuracy", "val_accuracy"}));
  EXPECT_TRUE(plots_for({}).empty());
}

TEST(ReportPage, OverlayGivesEachRunAColourAndThePageIsSelfContained) {
  RunMetrics a = parse_metrics(kMetrics, "runs/a/metrics.jsonl");
  RunMetrics b = parse_metrics(kMetrics, "runs/b<x>/metrics.jsonl");
  Report single;
  single.title = "one";
  single.sections.push_back(Section{"s", {}, {a}, "", {}});
  const std::string one = render_html(single);

  Report rep;
  rep.title = "Runs & \"more\"";
  Section s;
  s.runs = {a, b};
  s.samples_title = "Held-out";
  Sample q;
  q.image_name = "img0001.png";
  q.png = "\x89PNG fake";
  q.prompt = "What <b>colour</b>?";
  q.expected = "red";
  q.answer = "blue & green";
  q.verdict = 0;
  s.samples = {q, q};
  rep.sections.push_back(s);
  const std::string html = render_html(rep);
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(html.find(kGeneratorTag), std::string::npos);
  EXPECT_NE(html.find("<title>Runs &amp; &quot;more&quot;</title>"), std::string::npos);
  EXPECT_NE(html.find("b&lt;x&gt;: loss"), std::string::npos);  // the second run's legend, escaped
  EXPECT_NE(html.find("a: loss"), std::string::npos);
  // One colour per run in the overlay (the second palette colour draws run b's loss), one per series alone.
  EXPECT_NE(html.find("stroke=\"#ff7f0e\""), std::string::npos);
  EXPECT_NE(one.find("stroke=\"#ff7f0e\""), std::string::npos);  // val_loss in the single-run page
  EXPECT_EQ(one.find("a: loss"), std::string::npos);
  // The samples: escaped, the image inline, one image cell for both questions.
  EXPECT_NE(html.find("What &lt;b&gt;colour&lt;/b&gt;?"), std::string::npos);
  EXPECT_NE(html.find("blue &amp; green"), std::string::npos);
  EXPECT_NE(html.find("src=\"data:image/png;base64," + base64_encode(q.png) + "\""), std::string::npos);
  EXPECT_NE(html.find("rowspan=\"2\""), std::string::npos);
  EXPECT_EQ(count(html, "<img "), 1u);
  EXPECT_EQ(count(html, ">wrong<"), 2u);
  // Nothing to fetch, nothing to run.
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
  EXPECT_EQ(html.find("src=\"http"), std::string::npos);
  EXPECT_EQ(html.find("href="), std::string::npos);
  EXPECT_EQ(html.find("url(http"), std::string::npos);
  // The issues of a run are said: the skipped batch, the non-finite value.
  EXPECT_NE(html.find("1 batch(es) skipped"), std::string::npos);
  EXPECT_NE(html.find("1 non-finite value(s)"), std::string::npos);
}

TEST(ReportPage, EmptyMetricsGiveAPageThatSaysSo) {
  Report r;
  r.sections.push_back(Section{"", {}, {parse_metrics("", "runs/new/metrics.jsonl")}, "", {}});
  const std::string html = render_html(r);
  EXPECT_NE(html.find("no metrics yet"), std::string::npos);
  EXPECT_EQ(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("</html>"), std::string::npos);
}

TEST(ReportPage, RunReportIsWrittenAndAForeignFileIsNotReplaced) {
  fs::path d = fresh_dir("run");
  write_file_atomic((d / "metrics.jsonl").string(), std::string(kMetrics) + "{\"torn");
  const std::string out = write_run_report(d.string());
  EXPECT_EQ(out, (d / "report.html").string());
  const std::string html = read_file(out);
  EXPECT_TRUE(is_generated_report(out));
  EXPECT_NE(html.find("1 malformed line(s) skipped (first: line 7"), std::string::npos);
  write_file_atomic(out, "<html>mine</html>");
  EXPECT_THROW(write_run_report(d.string()), Error);
  EXPECT_EQ(read_file(out), "<html>mine</html>");
  fs::remove_all(d);
}

// The training loop writes report.html at the start, at each validation and at the end, with the
// throughput series.
TEST(ReportPage, TrainingLoopWritesTheRunReport) {
  ParamStore params;
  Param& w = params.add("w", {2});
  w.value.fill_(1.0);
  AdamW opt;
  int calls = 0;
  TrainTask task;
  fs::path d = fresh_dir("loop");
  bool seen_report_during_run = false, seen_at_start = false;
  task.micro_step = [&] {
    ++calls;
    if (calls == 1) seen_at_start = fs::exists(d / "run" / "report.html");
    if (calls == 3)  // after the step-2 validation
      seen_report_during_run = read_file((d / "run" / "report.html").string()).find("up to step 2 of") != std::string::npos;
    for (int i = 0; i < 2; ++i) w.grad_for_backward()->data<float>()[i] += w.value.data<float>()[i];
    return StepStats{double(w.value.data<float>()[0]), {{"aux", 0.5}}, 16};
  };
  task.validate = [&] { return std::map<std::string, double>{{"val_loss", double(w.value.data<float>()[0])}}; };
  task.data_state = [] { return std::string(); };
  task.restore_data_state = [](const std::string&) {};
  TrainLoopConfig cfg;
  cfg.out_dir = (d / "run").string();
  cfg.total_steps = 5;
  cfg.warmup_steps = 0;
  cfg.lr = 0.1;
  cfg.val_every = 2;
  cfg.quiet = true;
  run_training(params, opt, cfg, task);
  EXPECT_TRUE(seen_at_start);
  EXPECT_TRUE(seen_report_during_run);
  const std::string html = read_file((d / "run" / "report.html").string());
  EXPECT_NE(html.find("Throughput"), std::string::npos);
  EXPECT_NE(html.find("MoE aux loss"), std::string::npos);
  EXPECT_NE(html.find("val_loss"), std::string::npos);
  EXPECT_NE(html.find("<td>5</td>"), std::string::npos);  // up to the last step
  RunMetrics m = read_metrics(cfg.out_dir);
  ASSERT_TRUE(m.has("tok_per_s"));
  for (double v : m.series["tok_per_s"].value) EXPECT_GT(v, 0);
  fs::remove_all(d);
}

TEST(PngEncode, RoundTripsThroughTheDecoderAndShrinksThumbnails) {
  ImageU8 img;
  img.w = 7;
  img.h = 5;
  img.c = 3;
  for (int i = 0; i < 7 * 5 * 3; ++i) img.px.push_back(uint8_t(i * 37 % 256));
  const std::string png = encode_png(img);
  ASSERT_EQ(png.compare(0, 8, "\x89PNG\r\n\x1a\n"), 0);
  ImageU8 back = decode_image_memory(reinterpret_cast<const uint8_t*>(png.data()), png.size());
  EXPECT_EQ(back.w, 7);
  EXPECT_EQ(back.h, 5);
  EXPECT_EQ(back.px, img.px);
  const std::string thumb = encode_png_thumbnail(img, 4);
  ImageU8 t = decode_image_memory(reinterpret_cast<const uint8_t*>(thumb.data()), thumb.size());
  EXPECT_EQ(t.w, 4);
  EXPECT_EQ(t.h, 3);
  EXPECT_EQ(encode_png_thumbnail(img, 8), png);  // small enough already
  ImageU8 bad;
  EXPECT_THROW(encode_png(bad), Error);
}

// Values at the ends of the double range still give a finished plot with finite coordinates.
TEST(ReportPlot, ExtremeValuesGiveFiniteCoordinates) {
  PlotSpec spec;
  spec.id = "x";
  for (const std::vector<double>& y : std::vector<std::vector<double>>{
           {1e308, -1e308}, {5e-324, 1e308}, {1e-300, 1e300}, {DBL_MAX, DBL_MAX}, {-0.0, 0.0}, {1e15, 1e15 + 1}}) {
    PlotLine l{"l", "#000", "", true, {0, 9.2e18}, y};
    const std::string svg = render_svg_plot(spec, {l});
    EXPECT_NE(svg.find("</svg>"), std::string::npos);
    EXPECT_EQ(svg.find("nan"), std::string::npos) << y[0] << " " << y[1];
    EXPECT_EQ(svg.find("inf"), std::string::npos) << y[0] << " " << y[1];
  }
}

// Every plot's clip path has its own id, also when two keys sanitise to the same text.
TEST(ReportPage, ClipIdsAreUnique) {
  RunMetrics r;
  for (const char* k : {"loss", "a b", "a_b", "a/b"}) r.series[k] = Series{{1, 2}, {1, 2}};
  Report page;
  page.sections.push_back(Section{"", {}, {r}, "", {}});
  page.sections.push_back(Section{"", {}, {r}, "", {}});
  const std::string html = render_html(page);
  std::set<std::string> ids;
  size_t n = 0;
  const std::regex clip_id("clipPath id=\"([^\"]+)\"");
  for (std::sregex_iterator it(html.begin(), html.end(), clip_id), end; it != end; ++it, ++n)
    ids.insert((*it)[1].str());
  EXPECT_EQ(n, 8u);
  EXPECT_EQ(ids.size(), n);
}
