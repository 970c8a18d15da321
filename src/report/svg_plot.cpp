#include "report/svg_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "report/html_text.h"

namespace tv::report {

namespace {

// 1, 2 or 5 times a power of ten, the nearest to `raw`.
double nice_step(double raw) {
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / mag;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

std::string num(double v) {  // coordinates: one decimal is below a pixel
  if (!std::isfinite(v) || std::abs(v) > 1e6) v = 0;  // never reached for values inside the axes
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

// The largest 1/2/5 x 10^k at or below v (down) or the smallest at or above it (up); v > 0.
double nice_bound(double v, bool up) {
  const double mag = std::pow(10.0, std::floor(std::log10(v)));
  const double f = v / mag;
  const double steps[] = {1, 2, 5, 10};
  if (up) {
    for (double s : steps)
      if (f <= s * (1 + 1e-12)) return s * mag;
    return 10 * mag;
  }
  for (int i = 3; i >= 0; --i)
    if (f >= steps[i] * (1 - 1e-12)) return steps[i] * mag;
  return mag;
}

}  // namespace

Axis linear_axis(double min, double max, int target) {
  Axis a;
  if (!std::isfinite(min) || !std::isfinite(max)) return a;
  if (min > max) std::swap(min, max);
  if (!std::isfinite(max - min)) {  // a range wider than a double holds: its ends, no round ticks
    a.lo = min;
    a.hi = max;
    a.ticks = {min, max};
    return a;
  }
  if (max - min <= 1e-12 * std::max(1.0, std::abs(max))) {
    const double pad = min == 0 ? 1.0 : std::abs(min) * 0.1;
    min -= pad;
    max += pad;
  }
  const double step = nice_step((max - min) / std::max(1, target));
  a.lo = std::floor(min / step + 1e-9) * step;
  a.hi = std::ceil(max / step - 1e-9) * step;
  for (int i = 0; i <= 1000; ++i) {  // about `target` ticks; the bound only guards against rounding
    double t = a.lo + double(i) * step;
    if (t > a.hi + step * 1e-9) break;
    if (std::abs(t) < step * 1e-9) t = 0;  // no "-1e-17" for zero
    a.ticks.push_back(t);
  }
  return a;
}

Axis log_axis(double min, double max) {
  Axis a;
  a.log = true;
  if (!(min > 0) || !(max > 0) || !std::isfinite(min) || !std::isfinite(max)) return linear_axis(min, max);
  if (min > max) std::swap(min, max);
  a.lo = nice_bound(min, false);
  a.hi = nice_bound(max, true);
  if (a.hi <= a.lo) {
    a.lo /= 10;
    a.hi *= 10;
  }
  if (!(a.lo > 0) || !std::isfinite(a.hi)) return linear_axis(min, max);  // at the ends of the double range
  const int d0 = int(std::floor(std::log10(a.lo) + 1e-9)), d1 = int(std::ceil(std::log10(a.hi) - 1e-9));
  const int decades = d1 - d0;
  const int every = decades > 8 ? (decades + 7) / 8 : 1;  // at most about eight labelled decades
  for (int d = d0; d <= d1; ++d) {
    const double p = std::pow(10.0, d);
    for (double m : {1.0, 2.0, 5.0}) {
      if (m != 1.0 && decades > 2) continue;
      if (m == 1.0 && (d - d0) % every != 0) continue;
      const double t = m * p;
      if (t >= a.lo * (1 - 1e-9) && t <= a.hi * (1 + 1e-9)) a.ticks.push_back(t);
    }
  }
  return a;
}

Axis value_axis(const std::vector<double>& values, YScale scale) {
  double lo = INFINITY, hi = -INFINITY;
  for (double v : values)
    if (std::isfinite(v)) {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  if (!std::isfinite(lo)) return scale == YScale::Unit ? linear_axis(0, 1) : linear_axis(0, 1);
  if (scale == YScale::Unit) return linear_axis(std::min(lo, 0.0), std::max(hi, 1.0));
  if (scale == YScale::Auto && lo > 0 && hi / lo > kLogSpan) return log_axis(lo, hi);
  return linear_axis(lo, hi);
}

std::vector<std::string> tick_labels(const Axis& a) {
  std::vector<std::string> out;
  if (a.log || a.ticks.size() < 2) {
    for (double t : a.ticks) out.push_back(tick_label(t));
    return out;
  }
  // Linear ticks: as many decimals as the tick step needs (127, 127.5, 128), exponents for very large
  // or very small steps.
  const double step = a.ticks[1] - a.ticks[0];
  double biggest = 0;
  for (double t : a.ticks) biggest = std::max(biggest, std::abs(t));
  if (!std::isfinite(biggest) || !(step > 0) || !std::isfinite(step)) {
    for (double t : a.ticks) out.push_back(tick_label(t));
    return out;
  }
  if (biggest >= 1e5 || step < 1e-3) {  // significant digits down to the step's
    const int digits = std::max(1, int(std::floor(std::log10(biggest) + 1e-9) - std::floor(std::log10(step) + 1e-9)) + 1);
    for (double t : a.ticks) out.push_back(tick_label(t, std::clamp(digits, 3, 17)));
    return out;
  }
  const int decimals = std::max(0, int(std::ceil(-std::log10(step) - 1e-9)));
  for (double t : a.ticks) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, t);
    out.push_back(buf);
  }
  return out;
}

std::string tick_label(double v, int digits) {
  char buf[48];
  const double a = std::abs(v);
  if (v == 0) return "0";
  if (!std::isfinite(v)) return "?";
  if (a >= 1e5 || a < 1e-3) {
    int e = int(std::floor(std::log10(a)));
    double m = v / std::pow(10.0, e);
    std::snprintf(buf, sizeof buf, "%.*g", digits, m);
    if (std::abs(std::atof(buf)) >= 10) {  // 9.9999e4 rounds to 10
      m /= 10;
      ++e;
      std::snprintf(buf, sizeof buf, "%.*g", digits, m);
    }
    return std::string(buf) + "e" + std::to_string(e);
  }
  if (a >= 1000) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
    return buf;
  }
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

void downsample(const std::vector<double>& x, const std::vector<double>& y, size_t max_points, bool mean,
                std::vector<double>& out_x, std::vector<double>& out_y) {
  out_x.clear();
  out_y.clear();
  const size_t n = std::min(x.size(), y.size());
  if (n <= max_points || max_points < 4) {
    out_x.assign(x.begin(), x.begin() + long(n));
    out_y.assign(y.begin(), y.begin() + long(n));
    return;
  }
  const size_t buckets = mean ? max_points : max_points / 2;
  for (size_t b = 0; b < buckets; ++b) {
    const size_t i0 = n * b / buckets, i1 = n * (b + 1) / buckets;
    if (i0 >= i1) continue;
    if (mean) {
      double sx = 0, sy = 0;
      size_t k = 0;
      for (size_t i = i0; i < i1; ++i)
        if (std::isfinite(y[i])) {
          sx += x[i];
          sy += y[i];
          ++k;
        }
      out_x.push_back(k ? sx / double(k) : x[i0]);
      out_y.push_back(k ? sy / double(k) : NAN);
      continue;
    }
    size_t lo = n, hi = n, gap = n;
    for (size_t i = i0; i < i1; ++i) {
      if (!std::isfinite(y[i])) {
        if (gap == n) gap = i;
        continue;
      }
      if (lo == n || y[i] < y[lo]) lo = i;
      if (hi == n || y[i] > y[hi]) hi = i;
    }
    size_t picks[3] = {lo, hi, gap};
    std::sort(picks, picks + 3);
    for (int k = 0; k < 3; ++k)
      if (picks[k] != n && (k == 0 || picks[k] != picks[k - 1])) {
        out_x.push_back(x[picks[k]]);
        out_y.push_back(y[picks[k]]);
      }
  }
}

std::string render_svg_plot(const PlotSpec& spec, const std::vector<PlotLine>& all_lines) {
  std::vector<const PlotLine*> lines;
  std::vector<double> xs, ys;
  for (const PlotLine& l : all_lines) {
    bool any = false;
    for (size_t i = 0; i < l.x.size() && i < l.y.size(); ++i)
      if (std::isfinite(l.y[i]) && std::isfinite(l.x[i])) {
        any = true;
        xs.push_back(l.x[i]);
        ys.push_back(l.y[i]);
      }
    if (any) lines.push_back(&l);
  }
  const Axis ya = value_axis(ys, spec.scale);
  double xmin = INFINITY, xmax = -INFINITY;
  for (double v : xs) {
    xmin = std::min(xmin, v);
    xmax = std::max(xmax, v);
  }
  Axis xa = std::isfinite(xmin) ? linear_axis(xmin, xmax, 6) : linear_axis(0, 1, 6);
  if (std::isfinite(xmin) && xmin >= 0 && xa.lo < 0) {  // steps never go below zero
    xa.lo = 0;
    xa.ticks.erase(std::remove_if(xa.ticks.begin(), xa.ticks.end(), [](double t) { return t < 0; }), xa.ticks.end());
  }

  const double W = spec.width, H = spec.height;
  // The legend: rows of (swatch, label) under the title, wrapped at the plot's width.
  struct Item {
    const PlotLine* line;
    double x;
    int row;
  };
  std::vector<Item> items;
  const double left = 60, right = 14;
  double lx = left;
  int row = 0;
  for (const PlotLine* l : lines) {
    const double w = 26 + 6.4 * double(l->label.size()) + 12;
    if (lx + w > W - right && lx > left) {
      lx = left;
      ++row;
    }
    items.push_back({l, lx, row});
    lx += w;
  }
  const int rows = items.empty() ? 0 : row + 1;
  const double top = 30 + 16.0 * rows + 4, bottom = 42;
  const double pw = W - left - right, ph = std::max(40.0, H - top - bottom);
  auto px = [&](double x) { return left + (xa.hi > xa.lo ? (x - xa.lo) / (xa.hi - xa.lo) : 0.5) * pw; };
  auto py = [&](double y) {
    double f;
    if (ya.log)
      f = (std::log10(y) - std::log10(ya.lo)) / (std::log10(ya.hi) - std::log10(ya.lo));
    else
      f = ya.hi > ya.lo ? (y - ya.lo) / (ya.hi - ya.lo) : 0.5;
    return top + (1 - f) * ph;
  };

  std::string s;
  s += "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"plot\" width=\"" + num(W) + "\" height=\"" + num(top + ph + bottom) +
       "\" viewBox=\"0 0 " + num(W) + " " + num(top + ph + bottom) + "\" role=\"img\" aria-label=\"" +
       html_escape(spec.title) + "\">\n";
  s += "<rect x=\"0\" y=\"0\" width=\"" + num(W) + "\" height=\"" + num(top + ph + bottom) + "\" fill=\"#ffffff\"/>\n";
  s += "<text x=\"" + num(left) + "\" y=\"18\" class=\"title\" font-size=\"14\" font-weight=\"bold\" fill=\"#222\">" +
       html_escape(spec.title) + (ya.log ? " <tspan font-weight=\"normal\" fill=\"#777\" font-size=\"11\">(log scale)</tspan>" : "") +
       "</text>\n";
  for (const Item& it : items) {
    const double y = 30 + 16.0 * it.row + 6;
    s += "<line x1=\"" + num(it.x) + "\" y1=\"" + num(y - 4) + "\" x2=\"" + num(it.x + 20) + "\" y2=\"" + num(y - 4) +
         "\" stroke=\"" + html_escape(it.line->colour) + "\" stroke-width=\"2.5\"" +
         (it.line->dash.empty() ? "" : " stroke-dasharray=\"" + html_escape(it.line->dash) + "\"") + "/>";
    if (it.line->markers) s += "<circle cx=\"" + num(it.x + 10) + "\" cy=\"" + num(y - 4) + "\" r=\"3\" fill=\"" + html_escape(it.line->colour) + "\"/>";
    s += "<text x=\"" + num(it.x + 26) + "\" y=\"" + num(y) + "\" font-size=\"11\" fill=\"#333\">" + html_escape(it.line->label) + "</text>\n";
  }
  // Grid and ticks.
  s += "<g font-size=\"10\" fill=\"#555\">\n";
  const std::vector<std::string> ylabels = tick_labels(ya), xlabels = tick_labels(xa);
  for (size_t k = 0; k < ya.ticks.size(); ++k) {
    const double t = ya.ticks[k];
    const double y = py(t);
    s += "<line x1=\"" + num(left) + "\" y1=\"" + num(y) + "\" x2=\"" + num(left + pw) + "\" y2=\"" + num(y) +
         "\" stroke=\"#e6e6e6\"/><text x=\"" + num(left - 5) + "\" y=\"" + num(y + 3.5) + "\" text-anchor=\"end\">" +
         html_escape(ylabels[k]) + "</text>\n";
  }
  for (size_t k = 0; k < xa.ticks.size(); ++k) {
    const double x = px(xa.ticks[k]);
    s += "<line x1=\"" + num(x) + "\" y1=\"" + num(top) + "\" x2=\"" + num(x) + "\" y2=\"" + num(top + ph) +
         "\" stroke=\"#e6e6e6\"/><text x=\"" + num(x) + "\" y=\"" + num(top + ph + 14) + "\" text-anchor=\"middle\">" +
         html_escape(xlabels[k]) + "</text>\n";
  }
  s += "</g>\n<rect x=\"" + num(left) + "\" y=\"" + num(top) + "\" width=\"" + num(pw) + "\" height=\"" + num(ph) +
       "\" fill=\"none\" stroke=\"#999\"/>\n";
  s += "<text x=\"" + num(left + pw / 2) + "\" y=\"" + num(top + ph + 32) + "\" text-anchor=\"middle\" font-size=\"11\" fill=\"#444\">" +
       html_escape(spec.x_label) + "</text>\n";
  if (!spec.y_label.empty())
    s += "<text transform=\"translate(13," + num(top + ph / 2) + ") rotate(-90)\" text-anchor=\"middle\" font-size=\"11\" fill=\"#444\">" +
         html_escape(spec.y_label) + "</text>\n";
  if (lines.empty())
    s += "<text x=\"" + num(left + pw / 2) + "\" y=\"" + num(top + ph / 2) + "\" text-anchor=\"middle\" font-size=\"13\" fill=\"#999\">no data yet</text>\n";

  // The data, clipped to the frame.
  const std::string clip = "clip-" + spec.id;
  s += "<clipPath id=\"" + html_escape(clip) + "\"><rect x=\"" + num(left) + "\" y=\"" + num(top - 3) + "\" width=\"" + num(pw) +
       "\" height=\"" + num(ph + 6) + "\"/></clipPath>\n<g clip-path=\"url(#" + html_escape(clip) + ")\" fill=\"none\">\n";
  for (const PlotLine* l : lines) {
    std::vector<double> dx, dy;
    downsample(l->x, l->y, size_t(std::max(64.0, pw * 1.5)), false, dx, dy);
    std::string d;
    size_t finite = 0;
    bool pen_down = false;
    for (size_t i = 0; i < dx.size() && i < dy.size(); ++i) {
      const bool ok = std::isfinite(dy[i]) && std::isfinite(dx[i]) && (!ya.log || dy[i] > 0);
      if (!ok) {
        pen_down = false;
        continue;
      }
      d += pen_down ? 'L' : 'M';
      d += num(px(dx[i]));
      d += ' ';
      d += num(py(dy[i]));
      pen_down = true;
      ++finite;
    }
    const std::string colour = html_escape(l->colour);
    if (finite > 1)
      s += "<path d=\"" + d + "\" stroke=\"" + colour + "\" stroke-width=\"1.8\" stroke-linejoin=\"round\"" +
           (l->dash.empty() ? "" : " stroke-dasharray=\"" + html_escape(l->dash) + "\"") + "/>\n";
    if ((l->markers && dx.size() <= 400) || finite <= 1) {
      for (size_t i = 0; i < dx.size() && i < dy.size(); ++i) {
        if (!std::isfinite(dy[i]) || (ya.log && dy[i] <= 0)) continue;
        char tip[96];
        std::snprintf(tip, sizeof tip, "step %.0f: %.6g", dx[i], dy[i]);
        s += "<circle cx=\"" + num(px(dx[i])) + "\" cy=\"" + num(py(dy[i])) + "\" r=\"3\" fill=\"" + colour + "\"><title>" +
             html_escape(l->label) + ", " + tip + "</title></circle>";
      }
      s += "\n";
    }
  }
  s += "</g>\n</svg>\n";
  return s;
}

}  // namespace tv::report
