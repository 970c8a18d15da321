// Images: decode JPEG/PNG to 8-bit RGB exactly as PIL's Image.open(f).convert("RGB") does, and
// preprocess exactly as torchvision's Resize(256) + CenterCrop(224) + ToTensor + Normalize(ImageNet)
// on a PIL image (PIL's antialiased bilinear resampling in 8-bit fixed point). See docs/images.md.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace tv {

// Interleaved 8-bit pixels, row-major: px[(y * w + x) * c + channel].
struct ImageU8 {
  int w = 0, h = 0, c = 0;
  std::vector<uint8_t> px;
  size_t bytes() const { return size_t(w) * size_t(h) * size_t(c); }
};

// ---- Decoding (image_decode.cpp) -------------------------------------------------------------
// The result is always RGB (c == 3). Throws tv::Error naming `name` (the file) and what is wrong
// for unreadable, truncated, corrupt or unsupported data.
ImageU8 decode_image_file(const std::string& path);
ImageU8 decode_image_memory(const uint8_t* data, size_t size, const std::string& name = "<memory>");

// Images above this many pixels are refused (PIL refuses twice its MAX_IMAGE_PIXELS the same way). The
// fuzz build lowers the bound so that one input stays fast (fuzz/CMakeLists.txt).
#ifdef TV_FUZZ_MAX_IMAGE_PIXELS
constexpr int64_t kMaxImagePixels = TV_FUZZ_MAX_IMAGE_PIXELS;
#else
constexpr int64_t kMaxImagePixels = 2 * int64_t(89478485);
#endif

// ---- Geometry (image_resize.cpp) -------------------------------------------------------------
struct Size2 {
  int w = 0, h = 0;
};

// torchvision Resize(short_side) on a w x h image: the shorter side becomes short_side and the
// longer int(short_side * long / short) (truncated).
Size2 resized_size_short(int w, int h, int short_side);

// Which Pillow's pass order to follow. The two differ (by at most one level, on some pixels) only
// when both dimensions change and the height shrinks by more than twice as many pixels as the
// width: Pillow 13 then runs the vertical pass first; Pillow 12 and older always go horizontal first.
enum class ResampleOrder { Pillow13, Pillow12 };
constexpr ResampleOrder kDefaultResampleOrder = ResampleOrder::Pillow13;
bool resize_vertical_first(int in_w, int in_h, int w, int h, ResampleOrder order = kDefaultResampleOrder);

// PIL's Image.resize((w, h), BILINEAR) on 8-bit data: separable two-pass, support scaled by the
// downscale factor, 22-bit fixed-point coefficients, intermediate rounded to 8 bits.
ImageU8 resize_bilinear_aa(const ImageU8& in, int w, int h, ResampleOrder order = kDefaultResampleOrder);

// A window of that same resize: output pixels [x0, x0 + ww) x [y0, y0 + wh) of the w x h result,
// computed from only the source rows and columns they need (bit-identical to cropping the full one).
ImageU8 resize_bilinear_aa_window(const ImageU8& in, int w, int h, int x0, int y0, int ww, int wh,
                                  ResampleOrder order = kDefaultResampleOrder);

// torchvision CenterCrop((crop_h, crop_w)): zero padding when the image is smaller, offsets
// int(round((size - crop) / 2)) with Python's round-half-to-even.
ImageU8 center_crop(const ImageU8& in, int crop_w, int crop_h);

// Resize(resize_short) followed by CenterCrop(crop), as one windowed resize: [crop, crop, c] bytes.
ImageU8 resize_center_crop(const ImageU8& in, int resize_short, int crop,
                           ResampleOrder order = kDefaultResampleOrder);

// ---- Tensor output (image_resize.cpp) --------------------------------------------------------
constexpr float kImageMean[3] = {0.485f, 0.456f, 0.406f};
constexpr float kImageStd[3] = {0.229f, 0.224f, 0.225f};

// ToTensor + Normalize on an RGB image: out[c][y][x] = (v / 255 - mean[c]) / std[c] in float32,
// CHW, out holds 3 * h * w floats.
void normalize_to_chw(const ImageU8& rgb, float* out);

// The whole pipeline on a decoded RGB image: out holds 3 * crop * crop floats.
void preprocess_to_chw(const ImageU8& rgb, float* out, int resize_short = 256, int crop = 224,
                       ResampleOrder order = kDefaultResampleOrder);

// Decode + preprocess in one call.
void preprocess_image_file(const std::string& path, float* out, int resize_short = 256, int crop = 224);
void preprocess_image_memory(const uint8_t* data, size_t size, float* out, int resize_short = 256,
                             int crop = 224, const std::string& name = "<memory>");

}  // namespace tv
