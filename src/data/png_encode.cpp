#include "data/png_encode.h"

#include <png.h>

#include <algorithm>

#include "core/error.h"

namespace tv {

namespace {

extern "C" void append_png_bytes(png_structp png, png_bytep data, png_size_t n) {
  static_cast<std::string*>(png_get_io_ptr(png))->append(reinterpret_cast<const char*>(data), n);
}
extern "C" void flush_nothing(png_structp) {}

}  // namespace

std::string encode_png(const ImageU8& img) {
  TV_CHECK(img.w > 0 && img.h > 0 && (img.c == 1 || img.c == 3 || img.c == 4) && img.px.size() == img.bytes(),
           "encode_png: a non-empty 8-bit grey, RGB or RGBA image is expected, got ", img.w, "x", img.h, "x", img.c);
  std::string out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  // libpng reports errors by longjmp; nothing with a destructor is created between here and the end.
  if (!png || !info || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    fail("encode_png: libpng could not encode a ", img.w, "x", img.h, " image");
  }
  png_set_write_fn(png, &out, append_png_bytes, flush_nothing);
  const int type = img.c == 1 ? PNG_COLOR_TYPE_GRAY : img.c == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_RGBA;
  png_set_IHDR(png, info, png_uint_32(img.w), png_uint_32(img.h), 8, type, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  const size_t row = size_t(img.w) * size_t(img.c);
  for (int y = 0; y < img.h; ++y) png_write_row(png, const_cast<png_bytep>(img.px.data() + size_t(y) * row));
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

std::string encode_png_thumbnail(const ImageU8& img, int max_side) {
  TV_CHECK(max_side > 0, "encode_png_thumbnail: max_side must be positive");
  if (img.w <= max_side && img.h <= max_side) return encode_png(img);
  const double s = double(max_side) / double(std::max(img.w, img.h));
  const int w = std::max(1, int(img.w * s + 0.5)), h = std::max(1, int(img.h * s + 0.5));
  return encode_png(resize_bilinear_aa(img, w, h));
}

}  // namespace tv
