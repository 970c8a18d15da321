// One line plot as inline SVG: axes with round ticks (linear, or base-10 logarithmic when the values are
// positive and span more than kLogSpan), grid, legend, lines with gaps at non-finite values, and point
// markers for short series (validation). Text is escaped; no script, no external resource.
#pragma once
#include <string>
#include <vector>

namespace tv::report {

// Values spanning more than this ratio (max / min, all positive) get a log axis when the plot allows it.
constexpr double kLogSpan = 10.0;

enum class YScale {
  Auto,    // log when the values allow and span more than kLogSpan, else linear
  Linear,  // always linear
  Unit,    // linear over [0, 1] (shares, accuracies), widened only if a value lies outside
};

struct Axis {
  double lo = 0, hi = 1;  // the axis range (in data units, also for a log axis)
  bool log = false;
  std::vector<double> ticks;  // inside [lo, hi], increasing
};

// A linear axis over [min, max] widened to round ticks (1, 2 or 5 times a power of ten, about `target`
// of them); a degenerate range (one value) is widened around it.
Axis linear_axis(double min, double max, int target = 5);
// A log axis: [min, max] (both > 0) widened to the powers of ten around them when that adds little,
// ticks at the powers of ten (and at 2 and 5 times them over at most two decades).
Axis log_axis(double min, double max);
// The y axis for these values (non-finite ones ignored; a log axis also ignores those <= 0 only when
// none is: any value <= 0 means linear).
Axis value_axis(const std::vector<double>& values, YScale scale);
// A tick label: up to `digits` significant digits, powers of ten spelled 1e-4 / 1e5 when short forms do
// not fit.
std::string tick_label(double v, int digits = 3);
// The labels of an axis's ticks: a linear axis's with the decimals its step needs (126.5, 127, 127.5),
// so that no two read the same.
std::vector<std::string> tick_labels(const Axis& a);

struct PlotLine {
  std::string label;       // legend text (escaped when written)
  std::string colour;      // CSS colour, e.g. "#1f77b4"
  std::string dash;        // SVG stroke-dasharray ("" solid)
  bool markers = false;    // a dot at every point (validation lines)
  std::vector<double> x, y;  // x finite and increasing; y NaN leaves a gap
};

struct PlotSpec {
  std::string id;       // unique within the page (clip-path ids), letters, digits, '-' and '_'
  std::string title, x_label = "step", y_label;
  YScale scale = YScale::Auto;
  int width = 520, height = 260;
};

// The plot as an <svg> element. Lines without any finite point are left out (the legend says "no data"
// when none is left).
std::string render_svg_plot(const PlotSpec& spec, const std::vector<PlotLine>& lines);

// At most `max_points` points of a long series for drawing: per bucket of steps the minimum and the
// maximum (so that spikes stay visible) or, with `mean`, the bucket's mean. Gaps (NaN) are kept.
void downsample(const std::vector<double>& x, const std::vector<double>& y, size_t max_points, bool mean,
                std::vector<double>& out_x, std::vector<double>& out_y);

}  // namespace tv::report
