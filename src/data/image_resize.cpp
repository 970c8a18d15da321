// Resize, crop and normalise exactly as PIL + torchvision do (see docs/images.md).
//
// PIL's ImagingResample on 8-bit data, BILINEAR: for each output index xx of an in -> out resample,
//   scale = in / out, filterscale = max(scale, 1), support = filterscale,
//   center = (xx + 0.5) * scale, taps from (int)(center - support + 0.5) to (int)(center + support + 0.5)
//   (clamped to [0, in)), weight = tent((x - center + 0.5) / filterscale), normalised to sum 1 in
//   double, then rounded to 22-bit fixed point. Each output value is (2^21 + sum(v * w)) >> 22,
//   clipped to 0..255. Two passes with an 8-bit intermediate: horizontal first, except that
//   Pillow 13 goes vertical first when the height shrinks by more than twice as many pixels as
//   the width (resize_vertical_first). A pass is skipped when its dimension keeps its size.
// Integer sums do not depend on summation order, so any loop order, windowing or vectorisation
// gives the same bytes.
#include <algorithm>
#include <cmath>
#include <cstring>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "core/error.h"
#include "data/image.h"

namespace tv {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // PIL's PRECISION_BITS

struct Taps {
  int ksize = 0;
  std::vector<int> first, count;  // per output index
  std::vector<int32_t> w;         // [output][ksize] fixed-point weights
};

// Taps of outputs [o0, o1) of an in_size -> out_size bilinear resample.
Taps bilinear_taps(int in_size, int out_size, int o0, int o1) {
  Taps t;
  // PIL computes (in1 - in0) in float from the box (0, in_size), then divides in double.
  const double scale = double(float(in_size) - 0.0f) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = 1.0 * filterscale;  // bilinear support is 1
  t.ksize = int(std::ceil(support)) * 2 + 1;
  const int n = o1 - o0;
  t.first.resize(n);
  t.count.resize(n);
  t.w.assign(size_t(n) * t.ksize, 0);
  std::vector<double> k(t.ksize);
  for (int i = 0; i < n; ++i) {
    const int xx = o0 + i;
    const double center = 0.0 + (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = int(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = int(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      double a = ((x + xmin) - center + 0.5) * ss;
      if (a < 0.0) a = -a;
      const double wv = a < 1.0 ? 1.0 - a : 0.0;
      k[x] = wv;
      ww += wv;
    }
    for (int x = 0; x < xmax; ++x) {
      if (ww != 0.0) k[x] /= ww;
      const double f = k[x] * (1 << kPrecisionBits);
      t.w[size_t(i) * t.ksize + x] = k[x] < 0 ? int(-0.5 + f) : int(0.5 + f);
    }
    t.first[i] = xmin;
    t.count[i] = xmax;
  }
  return t;
}

inline uint8_t clip8(int32_t v) {
  v >>= kPrecisionBits;  // arithmetic shift: floor, as PIL's table lookup
  return uint8_t(v < 0 ? 0 : v > 255 ? 255 : v);
}

// Horizontal pass over `rows` rows: dst[y][x] from src[y][first[x] .. first[x] + count[x]).
template <int C>
void hpass(const uint8_t* src, size_t src_stride, int rows, const Taps& t, uint8_t* dst, size_t dst_stride) {
  const int n = int(t.first.size());
  for (int y = 0; y < rows; ++y) {
    const uint8_t* s = src + size_t(y) * src_stride;
    uint8_t* d = dst + size_t(y) * dst_stride;
    for (int x = 0; x < n; ++x) {
      const int32_t* k = &t.w[size_t(x) * t.ksize];
      const uint8_t* p = s + size_t(t.first[x]) * C;
      int32_t acc[C];
      for (int c = 0; c < C; ++c) acc[c] = 1 << (kPrecisionBits - 1);
      const int cnt = t.count[x];
      for (int i = 0; i < cnt; ++i)
        for (int c = 0; c < C; ++c) acc[c] += int32_t(p[i * C + c]) * k[i];
      for (int c = 0; c < C; ++c) d[x * C + c] = clip8(acc[c]);
    }
  }
}

#if defined(__AVX2__)
// RGB horizontal pass with AVX2, exact: each 22-bit weight k is split as k = (hi << 11) + lo with
// hi, lo < 2^11, so 16-bit multiply-adds (madd) of pixel pairs give two int32 partial sums that
// recombine to the same integer as the scalar loop. One step covers 4 taps: the two 128-bit lanes
// hold pixel pairs (i, i+1) and (i+2, i+3) as 16-bit [r r g g b b 0 0].
struct alignas(32) W16x16 {
  int16_t v[16];
};
struct RgbTapsAvx2 {
  std::vector<W16x16> hi, lo;  // per output: groups of 4 taps (zero past the count)
  std::vector<int> groups, offset;
  size_t max_read = 0;  // bytes read from a row start, at most
};

bool rgb_taps_avx2(const Taps& t, RgbTapsAvx2& r) {
  const int n = int(t.first.size());
  r.groups.resize(n);
  r.offset.resize(n);
  for (int x = 0; x < n; ++x) {
    const int g = (t.count[x] + 3) / 4;
    r.groups[x] = g;
    r.offset[x] = int(r.hi.size());
    for (int j = 0; j < g; ++j) {
      W16x16 h = {}, l = {};
      for (int lane = 0; lane < 2; ++lane)
        for (int q = 0; q < 2; ++q) {
          const int i = 4 * j + 2 * lane + q;
          const int32_t k = i < t.count[x] ? t.w[size_t(x) * t.ksize + i] : 0;
          if (k < 0 || k >= (1 << 22)) return false;  // outside the split's range: use the scalar loop
          for (int ch = 0; ch < 3; ++ch) {
            h.v[lane * 8 + ch * 2 + q] = int16_t(k >> 11);
            l.v[lane * 8 + ch * 2 + q] = int16_t(k & 2047);
          }
        }
      r.hi.push_back(h);
      r.lo.push_back(l);
    }
    if (g > 0) r.max_read = std::max(r.max_read, size_t(t.first[x] + 4 * g - 4) * 3 + 16);
  }
  return true;
}

void hpass_rgb_avx2(const uint8_t* src, size_t src_stride, const uint8_t* src_end, int rows, const Taps& t,
                    const RgbTapsAvx2& r, uint8_t* dst, size_t dst_stride) {
  const int n = int(t.first.size());
  const __m256i shuf = _mm256_setr_epi8(0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1, -1, -1,  //
                                        6, -1, 9, -1, 7, -1, 10, -1, 8, -1, 11, -1, -1, -1, -1, -1);
  const __m128i round = _mm_set1_epi32(1 << (kPrecisionBits - 1));
  std::vector<uint8_t> padded;
  for (int y = 0; y < rows; ++y) {
    const uint8_t* s = src + size_t(y) * src_stride;
    if (s + r.max_read > src_end) {  // the loads would run past the buffer: read a padded copy
      padded.assign(r.max_read + 16, 0);
      std::memcpy(padded.data(), s, size_t(src_end - s) < src_stride ? size_t(src_end - s) : src_stride);
      s = padded.data();
    }
    uint8_t* d = dst + size_t(y) * dst_stride;
    for (int x = 0; x < n; ++x) {
      const uint8_t* p = s + size_t(t.first[x]) * 3;
      const W16x16* wh = &r.hi[r.offset[x]];
      const W16x16* wl = &r.lo[r.offset[x]];
      __m256i acc_h = _mm256_setzero_si256(), acc_l = _mm256_setzero_si256();
      for (int j = 0; j < r.groups[x]; ++j, p += 12) {
        const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
        const __m256i v = _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(raw), shuf);
        acc_h = _mm256_add_epi32(acc_h, _mm256_madd_epi16(v, _mm256_load_si256(reinterpret_cast<const __m256i*>(wh[j].v))));
        acc_l = _mm256_add_epi32(acc_l, _mm256_madd_epi16(v, _mm256_load_si256(reinterpret_cast<const __m256i*>(wl[j].v))));
      }
      const __m128i sh = _mm_add_epi32(_mm256_castsi256_si128(acc_h), _mm256_extracti128_si256(acc_h, 1));
      const __m128i sl = _mm_add_epi32(_mm256_castsi256_si128(acc_l), _mm256_extracti128_si256(acc_l, 1));
      __m128i sum = _mm_add_epi32(_mm_add_epi32(_mm_slli_epi32(sh, 11), sl), round);
      sum = _mm_srai_epi32(sum, kPrecisionBits);
      sum = _mm_packus_epi16(_mm_packus_epi32(sum, sum), sum);  // clip to 0..255
      const uint32_t px = uint32_t(_mm_cvtsi128_si32(sum));
      d[3 * x] = uint8_t(px);
      d[3 * x + 1] = uint8_t(px >> 8);
      d[3 * x + 2] = uint8_t(px >> 16);
    }
  }
}
#endif

// `src_end` bounds the reads (vector loads read a little past the taps).
void hpass_any(int c, const uint8_t* src, size_t src_stride, const uint8_t* src_end, int rows, const Taps& t,
               uint8_t* dst, size_t dst_stride) {
#if defined(__AVX2__)
  if (c == 3) {
    RgbTapsAvx2 r;
    if (rgb_taps_avx2(t, r)) return hpass_rgb_avx2(src, src_stride, src_end, rows, t, r, dst, dst_stride);
  }
#endif
  (void)src_end;
  switch (c) {
    case 1: return hpass<1>(src, src_stride, rows, t, dst, dst_stride);
    case 2: return hpass<2>(src, src_stride, rows, t, dst, dst_stride);
    case 3: return hpass<3>(src, src_stride, rows, t, dst, dst_stride);
    case 4: return hpass<4>(src, src_stride, rows, t, dst, dst_stride);
    default: fail("resize: images with ", c, " channels are not supported (1 to 4)");
  }
}

// Vertical pass: dst row y from src rows first[y] - row0 ... (src holds rows from row0 on);
// each row is `len` bytes.
void vpass(const uint8_t* src, size_t src_stride, int row0, const Taps& t, int len, uint8_t* dst, size_t dst_stride) {
  std::vector<int32_t> acc(len);
  const int n = int(t.first.size());
  for (int y = 0; y < n; ++y) {
    const int32_t* k = &t.w[size_t(y) * t.ksize];
    std::fill(acc.begin(), acc.end(), 1 << (kPrecisionBits - 1));
    for (int i = 0; i < t.count[y]; ++i) {
      const uint8_t* s = src + size_t(t.first[y] + i - row0) * src_stride;
      const int32_t ki = k[i];
      int32_t* a = acc.data();
      for (int j = 0; j < len; ++j) a[j] += int32_t(s[j]) * ki;
    }
    uint8_t* d = dst + size_t(y) * dst_stride;
    for (int j = 0; j < len; ++j) d[j] = clip8(acc[j]);
  }
}

// Python's int(round(d / 2)) for d >= 0: halves go to the even neighbour.
int half_even_half(int d) {
  const int k = d / 2;
  return (d % 2 == 0 || k % 2 == 0) ? k : k + 1;
}

// The source window [begin, end) of one dimension of a centre crop, and where it lands in the
// output: torchvision pads (left/top (crop - size) // 2) when the image is smaller than the crop.
struct CropDim {
  int src0, len, dst0;
};
CropDim crop_dim(int size, int crop) {
  if (crop > size) return {0, size, (crop - size) / 2};
  return {half_even_half(size - crop), crop, 0};
}

// Float LUT for ToTensor + Normalize: (v / 255 - mean) / std in float32, as torch computes it.
struct NormLut {
  float v[3][256];
  NormLut() {
    for (int c = 0; c < 3; ++c)
      for (int i = 0; i < 256; ++i) {
        const float x = float(i) / 255.0f;
        v[c][i] = (x - kImageMean[c]) / kImageStd[c];
      }
  }
};
const NormLut& norm_lut() {
  static const NormLut lut;
  return lut;
}

}  // namespace

Size2 resized_size_short(int w, int h, int short_side) {
  TV_CHECK(w > 0 && h > 0 && short_side > 0, "resize of a ", w, "x", h, " image to short side ", short_side);
  const int s = std::min(w, h), l = std::max(w, h);
  // Python: int(short_side * long / short); the int product and true division are exact/rounded
  // the same in double.
  const int new_long = int(double(int64_t(short_side) * l) / double(s));
  return w <= h ? Size2{short_side, new_long} : Size2{new_long, short_side};
}

bool resize_vertical_first(int in_w, int in_h, int w, int h, ResampleOrder order) {
  // Pillow 13: when both passes run and the height shrinks by more than twice as many pixels as
  // the width does, the vertical pass runs first. Pillow 12 and older always go horizontal first.
  return order == ResampleOrder::Pillow13 && w != in_w && h < in_h && (in_h - h) > 2 * (in_w - w);
}

ImageU8 resize_bilinear_aa_window(const ImageU8& in, int w, int h, int x0, int y0, int ww, int wh,
                                  ResampleOrder order) {
  TV_CHECK(in.c >= 1 && in.c <= 4 && in.w > 0 && in.h > 0 && in.px.size() == in.bytes(),
           "resize: bad input image ", in.w, "x", in.h, "x", in.c);
  TV_CHECK(w > 0 && h > 0 && x0 >= 0 && y0 >= 0 && ww >= 0 && wh >= 0 && x0 + ww <= w && y0 + wh <= h,
           "resize: window ", ww, "x", wh, "+", x0, "+", y0, " outside the ", w, "x", h, " output");
  const int c = in.c;
  ImageU8 out;
  out.w = ww;
  out.h = wh;
  out.c = c;
  out.px.resize(out.bytes());
  if (ww == 0 || wh == 0) return out;
  const size_t in_stride = size_t(in.w) * c, out_stride = size_t(ww) * c;
  const bool need_h = w != in.w, need_v = h != in.h;

  if (need_h && need_v && resize_vertical_first(in.w, in.h, w, h, order)) {
    // Vertical pass over the source columns the horizontal taps read, then the horizontal pass.
    Taps th = bilinear_taps(in.w, w, x0, x0 + ww);
    const Taps tvert = bilinear_taps(in.h, h, y0, y0 + wh);
    const int col0 = th.first.front(), col1 = th.first.back() + th.count.back();
    for (int& f : th.first) f -= col0;
    const size_t mid_stride = size_t(col1 - col0) * c;
    std::vector<uint8_t> mid(size_t(wh) * mid_stride);
    vpass(in.px.data() + size_t(col0) * c, in_stride, 0, tvert, int(mid_stride), mid.data(), mid_stride);
    hpass_any(c, mid.data(), mid_stride, mid.data() + mid.size(), wh, th, out.px.data(), out_stride);
    return out;
  }

  Taps tvert;
  int row0 = y0, row1 = y0 + wh;  // source rows the vertical pass reads
  if (need_v) {
    tvert = bilinear_taps(in.h, h, y0, y0 + wh);
    row0 = tvert.first.front();
    row1 = tvert.first.back() + tvert.count.back();
  }
  // Rows [row0, row1) restricted to the output columns: horizontally resampled, or copied.
  std::vector<uint8_t> mid;
  const uint8_t* mid_ptr;
  size_t mid_stride;
  if (need_h) {
    const Taps th = bilinear_taps(in.w, w, x0, x0 + ww);
    uint8_t* dst = need_v ? (mid.resize(size_t(row1 - row0) * out_stride), mid.data()) : out.px.data();
    hpass_any(c, in.px.data() + size_t(row0) * in_stride, in_stride, in.px.data() + in.px.size(), row1 - row0, th,
              dst, out_stride);
    mid_ptr = dst;
    mid_stride = out_stride;
  } else {
    mid_ptr = in.px.data() + size_t(row0) * in_stride + size_t(x0) * c;
    mid_stride = in_stride;
    if (!need_v)
      for (int y = 0; y < wh; ++y) std::memcpy(out.px.data() + y * out_stride, mid_ptr + y * mid_stride, out_stride);
  }
  if (need_v) vpass(mid_ptr, mid_stride, row0, tvert, int(out_stride), out.px.data(), out_stride);
  return out;
}

ImageU8 resize_bilinear_aa(const ImageU8& in, int w, int h, ResampleOrder order) {
  return resize_bilinear_aa_window(in, w, h, 0, 0, w, h, order);
}

ImageU8 center_crop(const ImageU8& in, int crop_w, int crop_h) {
  TV_CHECK(crop_w > 0 && crop_h > 0 && in.px.size() == in.bytes(), "center_crop to ", crop_w, "x", crop_h);
  const CropDim cx = crop_dim(in.w, crop_w), cy = crop_dim(in.h, crop_h);
  ImageU8 out;
  out.w = crop_w;
  out.h = crop_h;
  out.c = in.c;
  out.px.assign(out.bytes(), 0);
  for (int y = 0; y < cy.len; ++y)
    std::memcpy(out.px.data() + (size_t(cy.dst0 + y) * crop_w + cx.dst0) * in.c,
                in.px.data() + (size_t(cy.src0 + y) * in.w + cx.src0) * in.c, size_t(cx.len) * in.c);
  return out;
}

ImageU8 resize_center_crop(const ImageU8& in, int resize_short, int crop, ResampleOrder order) {
  TV_CHECK(crop > 0, "crop size ", crop);
  const Size2 rs = resized_size_short(in.w, in.h, resize_short);
  const CropDim cx = crop_dim(rs.w, crop), cy = crop_dim(rs.h, crop);
  const ImageU8 win = resize_bilinear_aa_window(in, rs.w, rs.h, cx.src0, cy.src0, cx.len, cy.len, order);
  if (cx.len == crop && cy.len == crop) return win;
  ImageU8 out;
  out.w = out.h = crop;
  out.c = in.c;
  out.px.assign(out.bytes(), 0);
  for (int y = 0; y < cy.len; ++y)
    std::memcpy(out.px.data() + (size_t(cy.dst0 + y) * crop + cx.dst0) * in.c,
                win.px.data() + size_t(y) * cx.len * in.c, size_t(cx.len) * in.c);
  return out;
}

void normalize_to_chw(const ImageU8& rgb, float* out) {
  TV_CHECK(rgb.c == 3 && rgb.px.size() == rgb.bytes(), "normalize_to_chw needs an RGB image, got ", rgb.c, " channels");
  const NormLut& lut = norm_lut();
  const size_t plane = size_t(rgb.w) * rgb.h;
  const uint8_t* p = rgb.px.data();
  for (size_t i = 0; i < plane; ++i, p += 3) {
    out[i] = lut.v[0][p[0]];
    out[plane + i] = lut.v[1][p[1]];
    out[2 * plane + i] = lut.v[2][p[2]];
  }
}

void preprocess_to_chw(const ImageU8& rgb, float* out, int resize_short, int crop, ResampleOrder order) {
  TV_CHECK(rgb.c == 3, "preprocess needs an RGB image, got ", rgb.c, " channels");
  normalize_to_chw(resize_center_crop(rgb, resize_short, crop, order), out);
}

void preprocess_image_file(const std::string& path, float* out, int resize_short, int crop) {
  preprocess_to_chw(decode_image_file(path), out, resize_short, crop);
}

void preprocess_image_memory(const uint8_t* data, size_t size, float* out, int resize_short, int crop,
                             const std::string& name) {
  preprocess_to_chw(decode_image_memory(data, size, name), out, resize_short, crop);
}

}  // namespace tv
