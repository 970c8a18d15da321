// Image decode + preprocess against PIL + torchvision references (tests/fixtures/images, written by
// scripts/fixtures/image_fixtures.py; formats in docs/images.md).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/image.h"

using namespace tv;

namespace {

const std::string kDir = std::string(TV_FIXTURE_DIR) + "/images/";

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << "cannot open " << path;
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

uint32_t le32(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24; }

// "TVU8" h w c, then h*w*c bytes.
ImageU8 read_u8(const std::string& name) {
  const std::vector<uint8_t> b = read_bytes(kDir + name);
  ImageU8 img;
  if (b.size() < 16 || std::memcmp(b.data(), "TVU8", 4) != 0) {
    ADD_FAILURE() << name << ": not a TVU8 file";
    return img;
  }
  img.h = int(le32(&b[4]));
  img.w = int(le32(&b[8]));
  img.c = int(le32(&b[12]));
  img.px.assign(b.begin() + 16, b.end());
  EXPECT_EQ(img.px.size(), img.bytes()) << name;
  return img;
}

// "TVF4" c h w, then c*h*w little-endian floats.
std::vector<float> read_f32(const std::string& name, int& c, int& h, int& w) {
  const std::vector<uint8_t> b = read_bytes(kDir + name);
  if (b.size() < 16 || std::memcmp(b.data(), "TVF4", 4) != 0) {
    ADD_FAILURE() << name << ": not a TVF4 file";
    return {};
  }
  c = int(le32(&b[4]));
  h = int(le32(&b[8]));
  w = int(le32(&b[12]));
  std::vector<float> v(size_t(c) * h * w);
  EXPECT_EQ(b.size(), 16 + v.size() * 4) << name;
  std::memcpy(v.data(), &b[16], std::min(v.size() * 4, b.size() - 16));
  return v;
}

struct Case {
  std::string kind, file, ref;
  int resize = 0, crop = 0;
  int w = 0, h = 0;  // resize cases
};

std::vector<Case> manifest() {
  std::ifstream f(kDir + "manifest.txt");
  EXPECT_TRUE(f.good()) << "missing " << kDir << "manifest.txt";
  std::vector<Case> cases;
  std::string line;
  while (std::getline(f, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream is(line);
    Case c;
    is >> c.kind >> c.file;
    if (c.kind == "decode") is >> c.ref;
    if (c.kind == "preprocess" || c.kind == "normalised") is >> c.resize >> c.crop >> c.ref;
    if (c.kind == "resize" || c.kind == "resize_pillow12") is >> c.w >> c.h >> c.ref;
    cases.push_back(c);
  }
  return cases;
}

// Max absolute difference and how many bytes differ.
std::pair<int, size_t> compare(const ImageU8& a, const ImageU8& b) {
  int maxd = 0;
  size_t n = 0;
  for (size_t i = 0; i < a.px.size() && i < b.px.size(); ++i) {
    const int d = std::abs(int(a.px[i]) - int(b.px[i]));
    maxd = std::max(maxd, d);
    n += d != 0;
  }
  return {maxd, n};
}


}  // namespace

// Decoding equals PIL's Image.open(f).convert("RGB") byte for byte. (JPEG decoders of different
// libjpeg-turbo versions could differ by one level; the message reports it if they ever do.)
TEST(Image, DecodeMatchesPil) {
  int cases = 0;
  for (const Case& c : manifest()) {
    if (c.kind != "decode") continue;
    SCOPED_TRACE(c.file);
    const ImageU8 got = decode_image_file(kDir + c.file);
    const ImageU8 ref = read_u8(c.ref);
    if (got.w != ref.w || got.h != ref.h || got.c != 3 || ref.c != 3) {
      ADD_FAILURE() << "size " << got.w << "x" << got.h << "x" << got.c << ", PIL " << ref.w << "x" << ref.h << "x" << ref.c;
      continue;
    }
    const auto [maxd, ndiff] = compare(got, ref);
    EXPECT_EQ(maxd, 0) << c.file << ": " << ndiff << " of " << ref.px.size() << " bytes differ, max by " << maxd;
    ++cases;
  }
  EXPECT_GE(cases, 20);
}

// Resize(R) + CenterCrop(C) equals torchvision on PIL, byte for byte.
TEST(Image, PreprocessMatchesTorchvision) {
  int cases = 0;
  for (const Case& c : manifest()) {
    if (c.kind != "preprocess") continue;
    SCOPED_TRACE(c.file + " resize " + std::to_string(c.resize) + " crop " + std::to_string(c.crop));
    const ImageU8 got = resize_center_crop(decode_image_file(kDir + c.file), c.resize, c.crop);
    const ImageU8 ref = read_u8(c.ref);
    if (got.w != ref.w || got.h != ref.h || got.c != ref.c) {
      ADD_FAILURE() << "size " << got.w << "x" << got.h << "x" << got.c << ", torchvision " << ref.w << "x" << ref.h << "x" << ref.c;
      continue;
    }
    const auto [maxd, ndiff] = compare(got, ref);
    EXPECT_EQ(maxd, 0) << ndiff << " of " << ref.px.size() << " bytes differ, max by " << maxd;
    ++cases;
  }
  EXPECT_GE(cases, 25);
}

// Image.resize((w, h), BILINEAR) to arbitrary sizes, in Pillow 13's pass order (the default) and in
// Pillow 12's (always horizontal first; the reference is two one-pass resizes in that order).
TEST(Image, ResizeMatchesPil) {
  int cases = 0, old_cases = 0;
  for (const Case& c : manifest()) {
    if (c.kind != "resize" && c.kind != "resize_pillow12") continue;
    SCOPED_TRACE(c.kind + " " + c.file + " to " + std::to_string(c.w) + "x" + std::to_string(c.h));
    const bool old = c.kind == "resize_pillow12";
    const ImageU8 src = decode_image_file(kDir + c.file);
    const ImageU8 got = resize_bilinear_aa(src, c.w, c.h, old ? ResampleOrder::Pillow12 : ResampleOrder::Pillow13);
    const ImageU8 ref = read_u8(c.ref);
    ASSERT_EQ(got.px.size(), ref.px.size());
    const auto [maxd, ndiff] = compare(got, ref);
    EXPECT_EQ(maxd, 0) << ndiff << " bytes differ";
    if (old) {
      // These cases are ones where the two orders really differ.
      EXPECT_TRUE(resize_vertical_first(src.w, src.h, c.w, c.h));
      EXPECT_NE(resize_bilinear_aa(src, c.w, c.h).px, got.px);
    }
    (old ? old_cases : cases)++;
  }
  EXPECT_GE(cases, 6);
  EXPECT_GE(old_cases, 2);
  // Pillow 13 goes vertical first only when both sizes change and the height loses more than
  // twice the pixels the width loses.
  EXPECT_TRUE(resize_vertical_first(60, 190, 32, 101));
  EXPECT_FALSE(resize_vertical_first(640, 480, 341, 256));
  EXPECT_FALSE(resize_vertical_first(480, 640, 256, 341));
  EXPECT_FALSE(resize_vertical_first(100, 100, 100, 20));   // width unchanged: one pass
  EXPECT_FALSE(resize_vertical_first(100, 100, 60, 20));    // 80 > 80 is false
  EXPECT_TRUE(resize_vertical_first(100, 100, 61, 20));
  EXPECT_FALSE(resize_vertical_first(10, 10, 50, 20));      // height grows
  EXPECT_FALSE(resize_vertical_first(100, 100, 61, 20, ResampleOrder::Pillow12));
}

// ToTensor + Normalize: the float32 values torch computes, exactly.
TEST(Image, NormalisedMatchesTorch) {
  int cases = 0;
  for (const Case& c : manifest()) {
    if (c.kind != "normalised") continue;
    SCOPED_TRACE(c.file);
    int ch = 0, h = 0, w = 0;
    const std::vector<float> ref = read_f32(c.ref, ch, h, w);
    ASSERT_EQ(ch, 3);
    ASSERT_EQ(h, c.crop);
    ASSERT_EQ(w, c.crop);
    std::vector<float> got(ref.size(), -99.f);
    preprocess_image_file(kDir + c.file, got.data(), c.resize, c.crop);
    float maxd = 0;
    for (size_t i = 0; i < ref.size(); ++i) maxd = std::max(maxd, std::fabs(got[i] - ref[i]));
    EXPECT_EQ(maxd, 0.0f);
    ++cases;
  }
  EXPECT_GE(cases, 1);
}

TEST(Image, BrokenFilesThrowNamingTheFile) {
  int cases = 0;
  for (const Case& c : manifest()) {
    if (c.kind != "error") continue;
    const std::string path = kDir + c.file;
    try {
      decode_image_file(path);
      ADD_FAILURE() << c.file << " decoded without an error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
    std::vector<float> out(3 * 8 * 8);
    EXPECT_THROW(preprocess_image_file(path, out.data(), 8, 8), Error) << c.file;
    ++cases;
  }
  EXPECT_GE(cases, 3);
  try {
    decode_image_file(kDir + "truncated.jpg");
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }
  try {
    decode_image_file(kDir + "not_an_image.jpg");
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a JPEG or PNG"), std::string::npos) << e.what();
  }
  EXPECT_THROW(decode_image_file(kDir + "no_such_file.png"), Error);
  EXPECT_THROW(decode_image_file(kDir), Error);  // a directory
  const uint8_t empty = 0;
  EXPECT_THROW(decode_image_memory(&empty, 0, "empty"), Error);
  // Every prefix of a valid JPEG and PNG fails cleanly (no crash, no partial image).
  for (const char* f : {"photo_444.jpg", "rgb.png"}) {
    const std::vector<uint8_t> b = read_bytes(kDir + f);
    for (size_t n = 0; n + 1 < b.size(); n += 1 + n / 7)
      EXPECT_THROW(decode_image_memory(b.data(), n, f), Error) << f << " cut at " << n;
  }
}

TEST(Image, DecodeFromMemoryEqualsFile) {
  for (const char* f : {"photo_420.jpg", "palette_trns.png", "cmyk.jpg"}) {
    const std::vector<uint8_t> b = read_bytes(kDir + f);
    const ImageU8 a = decode_image_memory(b.data(), b.size(), f);
    const ImageU8 c = decode_image_file(kDir + f);
    EXPECT_EQ(a.px, c.px) << f;
  }
}

// torchvision's _compute_resized_output_size with a single size.
TEST(Image, ResizedSizeRule) {
  auto eq = [](Size2 s, int w, int h) { return s.w == w && s.h == h; };
  EXPECT_TRUE(eq(resized_size_short(640, 480, 256), 341, 256));  // int(256 * 640 / 480) = 341
  EXPECT_TRUE(eq(resized_size_short(480, 640, 256), 256, 341));
  EXPECT_TRUE(eq(resized_size_short(500, 500, 256), 256, 256));
  EXPECT_TRUE(eq(resized_size_short(150, 100, 256), 384, 256));
  EXPECT_TRUE(eq(resized_size_short(333, 500, 256), 256, 384));  // 384.38 truncated
  EXPECT_TRUE(eq(resized_size_short(3, 1000, 256), 256, 85333));
  // A case where the float quotient lands just below an integer: int() truncates.
  EXPECT_TRUE(eq(resized_size_short(49, 1000, 7), 7, 142));  // 7000/49 = 142.857
}

// CenterCrop offsets use Python's round (half to even); smaller images are zero-padded.
TEST(Image, CenterCropRule) {
  ImageU8 img{9, 6, 1, {}};
  for (int i = 0; i < 54; ++i) img.px.push_back(uint8_t(i + 1));
  auto at = [](const ImageU8& m, int x, int y) { return int(m.px[size_t(y) * m.w + x]); };
  // width 9 -> 8: (9 - 8) / 2 = 0.5 rounds to 0; height 6 -> 3: 1.5 rounds to 2.
  ImageU8 c = center_crop(img, 8, 3);
  EXPECT_EQ(at(c, 0, 0), at(img, 0, 2));
  // width 9 -> 4: 2.5 rounds to 2.
  c = center_crop(img, 4, 6);
  EXPECT_EQ(at(c, 0, 0), at(img, 2, 0));
  // Padding: 9 -> 12 puts 1 zero column on the left ((12 - 9) // 2), 2 on the right.
  c = center_crop(img, 12, 4);
  EXPECT_EQ(at(c, 0, 0), 0);
  EXPECT_EQ(at(c, 1, 0), at(img, 0, 1));
  EXPECT_EQ(at(c, 9, 0), at(img, 8, 1));
  EXPECT_EQ(at(c, 10, 0), 0);
  EXPECT_EQ(at(c, 11, 3), 0);
}

// The windowed resize is the full resize cropped, for up- and downscaling in each dimension.
TEST(Image, WindowEqualsCroppedFullResize) {
  const ImageU8 src = decode_image_file(kDir + "photo_444.jpg");  // 96 x 80
  const int sizes[][2] = {{37, 29}, {96, 41}, {50, 80}, {200, 150}, {96, 80}, {13, 170}, {100, 20}, {90, 7}};
  for (auto [w, h] : sizes) {
    const ImageU8 full = resize_bilinear_aa(src, w, h);
    ASSERT_EQ(full.w, w);
    ASSERT_EQ(full.h, h);
    const int x0 = w / 5, y0 = h / 3, ww = w - w / 5 - w / 7, wh = h - h / 3 - h / 9;
    const ImageU8 win = resize_bilinear_aa_window(src, w, h, x0, y0, ww, wh);
    bool same = true;
    for (int y = 0; y < wh; ++y)
      same &= std::memcmp(&win.px[size_t(y) * ww * 3], &full.px[(size_t(y0 + y) * w + x0) * 3], size_t(ww) * 3) == 0;
    EXPECT_TRUE(same) << w << "x" << h;
  }
  // Same size is a copy; one channel and four channels work too.
  EXPECT_EQ(resize_bilinear_aa(src, 96, 80).px, src.px);
  ImageU8 gray{src.w, src.h, 1, {}};
  for (size_t i = 0; i < src.px.size(); i += 3) gray.px.push_back(src.px[i + 1]);
  const ImageU8 g = resize_bilinear_aa(gray, 40, 31);
  const ImageU8 rgb = resize_bilinear_aa(src, 40, 31);
  for (size_t i = 0; i < g.px.size(); ++i) ASSERT_EQ(g.px[i], rgb.px[i * 3 + 1]);
}

// A constant image stays constant through any resize (weights sum to one in fixed point).
TEST(Image, ResizeKeepsConstant) {
  ImageU8 img{31, 17, 3, std::vector<uint8_t>(31 * 17 * 3, 200)};
  for (auto [w, h] : {std::pair{7, 5}, {64, 40}, {31, 3}, {1, 1}}) {
    const ImageU8 r = resize_bilinear_aa(img, w, h);
    for (uint8_t v : r.px) ASSERT_EQ(v, 200) << w << "x" << h;
  }
}

TEST(Image, NormaliseLayoutAndValues) {
  ImageU8 img{2, 1, 3, {0, 128, 255, 10, 20, 30}};
  float out[6];
  normalize_to_chw(img, out);
  EXPECT_FLOAT_EQ(out[0], (0.0f - 0.485f) / 0.229f);  // R plane
  EXPECT_FLOAT_EQ(out[1], (10.0f / 255.0f - 0.485f) / 0.229f);
  EXPECT_FLOAT_EQ(out[2], (128.0f / 255.0f - 0.456f) / 0.224f);  // G plane
  EXPECT_FLOAT_EQ(out[5], (30.0f / 255.0f - 0.406f) / 0.225f);   // B plane
  std::vector<float> full(3 * 224 * 224);
  preprocess_image_file(kDir + "photo_wide.jpg", full.data());  // defaults 256 / 224
  const ImageU8 ref = read_u8("photo_wide_jpg.r256c224.u8");
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < 224 * 224; i += 97)
      ASSERT_EQ(full[size_t(c) * 224 * 224 + i], (float(ref.px[size_t(i) * 3 + c]) / 255.0f - kImageMean[c]) / kImageStd[c]);
}
