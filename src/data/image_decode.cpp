// JPEG (libjpeg-turbo) and PNG (libpng) decoding to RGB, matching PIL's open + convert("RGB").
//
// What PIL does, and so what this does:
//  - JPEG: libjpeg defaults (ISLOW IDCT, fancy upsampling; no DCT scaling). 1 component -> L,
//    3 -> RGB (libjpeg converts YCbCr), 4 -> CMYK read as "CMYK;I" (always inverted, Adobe
//    convention) with libjpeg converting YCCK to CMYK, then Convert.c's cmyk2rgb. Warnings about
//    corrupt data are ignored; running out of data (a truncated file) is an error.
//  - PNG: no gamma or colour management. Bit depths below 8 are scaled (1 -> 0/255, 2 -> *85,
//    4 -> *17) for grey and looked up for palette images (missing palette entries are black);
//    16-bit samples keep their high byte, except 16-bit grey ("I;16"), which PIL converts by
//    clipping the 16-bit value to 255. Alpha is dropped, never composited; tRNS is ignored.
//
// libjpeg and libpng report errors by longjmp. Each guarded step below runs in its own function
// that holds no C++ objects, so the jump skips no destructors; the caller turns failure into
// tv::Error.
#include <algorithm>
#include <cerrno>
#include <csetjmp>
#include <cstdio>
#include <cstring>

#include <sys/stat.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "core/error.h"
#include "data/image.h"

namespace tv {
namespace {

void check_dims(int64_t w, int64_t h, const std::string& name) {
  if (w <= 0 || h <= 0) fail("image '", name, "': invalid size ", w, "x", h);
  if (w * h > kMaxImagePixels)
    fail("image '", name, "': ", w, "x", h, " is too large (more than ", kMaxImagePixels, " pixels)");
}

// ---------------------------------------------------------------------------------------------
// JPEG

struct JpegErr {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  bool truncated;
  char msg[JMSG_LENGTH_MAX];
};

void jpeg_on_error(j_common_ptr ci) {
  auto* e = reinterpret_cast<JpegErr*>(ci->err);
  ci->err->format_message(ci, e->msg);
  std::longjmp(e->jump, 1);
}

void jpeg_on_message(j_common_ptr ci, int level) {
  // Level -1 is a warning. PIL ignores them all, but it cannot finish a file that ends early.
  if (level < 0 && ci->err->msg_code == JWRN_JPEG_EOF) {
    auto* e = reinterpret_cast<JpegErr*>(ci->err);
    e->truncated = true;
    std::snprintf(e->msg, sizeof e->msg, "truncated JPEG data (the file ends before the image does)");
    std::longjmp(e->jump, 1);
  }
}

struct JpegJob {
  jpeg_decompress_struct ci;
  JpegErr err;
};

bool jpeg_header(JpegJob* j, const uint8_t* data, size_t size) {
  if (setjmp(j->err.jump)) return false;
  jpeg_create_decompress(&j->ci);
  jpeg_mem_src(&j->ci, data, static_cast<unsigned long>(size));
  jpeg_read_header(&j->ci, TRUE);
  return true;
}

// Decodes all rows into out (w * h * out_components bytes); out_color_space is already set.
bool jpeg_body(JpegJob* j, uint8_t* out, size_t stride) {
  if (setjmp(j->err.jump)) return false;
  jpeg_start_decompress(&j->ci);
  JSAMPROW rows[16];
  while (j->ci.output_scanline < j->ci.output_height) {
    int n = 0;
    for (; n < 16 && j->ci.output_scanline + JDIMENSION(n) < j->ci.output_height; ++n)
      rows[n] = out + size_t(j->ci.output_scanline + n) * stride;
    jpeg_read_scanlines(&j->ci, rows, JDIMENSION(n));
  }
  jpeg_finish_decompress(&j->ci);
  return true;
}

// PIL: "CMYK;I" unpacking inverts every sample; cmyk2rgb then gives
// v = clip8(nk - muldiv255(c, nk)) with nk = 255 - k, muldiv255(a, b) = ((t >> 8) + t) >> 8, t = a*b + 128.
void cmyk_inverted_to_rgb(const uint8_t* cmyk, uint8_t* rgb, size_t n) {
  for (size_t i = 0; i < n; ++i, cmyk += 4, rgb += 3) {
    const int nk = cmyk[3];  // 255 - (255 - k)
    for (int ch = 0; ch < 3; ++ch) {
      const int c = 255 - cmyk[ch];
      const int t = c * nk + 128;
      const int v = nk - (((t >> 8) + t) >> 8);
      rgb[ch] = uint8_t(v < 0 ? 0 : v);
    }
  }
}

ImageU8 decode_jpeg(const uint8_t* data, size_t size, const std::string& name) {
  JpegJob j;
  std::memset(&j, 0, sizeof j);
  j.ci.err = jpeg_std_error(&j.err.pub);
  j.err.pub.error_exit = jpeg_on_error;
  j.err.pub.emit_message = jpeg_on_message;
  struct Destroy {
    JpegJob* j;
    ~Destroy() { jpeg_destroy_decompress(&j->ci); }
  } destroy{&j};

  if (!jpeg_header(&j, data, size)) fail("image '", name, "': cannot read JPEG header: ", j.err.msg);
  const int nc = j.ci.num_components;
  if (j.ci.data_precision != 8) fail("image '", name, "': ", j.ci.data_precision, "-bit JPEG samples are not supported");
  if (nc != 1 && nc != 3 && nc != 4) fail("image '", name, "': cannot handle a JPEG with ", nc, " components");
  check_dims(j.ci.image_width, j.ci.image_height, name);

  ImageU8 img;
  img.w = int(j.ci.image_width);
  img.h = int(j.ci.image_height);
  img.c = 3;
  img.px.resize(img.bytes());
  bool ok;
  if (nc == 4) {
    // YCCK is turned into CMYK by libjpeg itself, as for PIL.
    j.ci.out_color_space = JCS_CMYK;
    std::vector<uint8_t> cmyk(size_t(img.w) * img.h * 4);
    ok = jpeg_body(&j, cmyk.data(), size_t(img.w) * 4);
    if (ok) cmyk_inverted_to_rgb(cmyk.data(), img.px.data(), size_t(img.w) * img.h);
  } else {
    // Grey JPEGs: libjpeg's grey -> RGB replicates the sample, which is PIL's L -> RGB.
    j.ci.out_color_space = JCS_RGB;
    ok = jpeg_body(&j, img.px.data(), size_t(img.w) * 3);
  }
  if (!ok) fail("image '", name, "': ", j.err.truncated ? "" : "corrupt JPEG data: ", j.err.msg);
  return img;
}

// ---------------------------------------------------------------------------------------------
// PNG

struct PngReader {
  const uint8_t* data;
  size_t size, pos;
  bool truncated;
  char msg[256];
};

void png_on_read(png_structp png, png_bytep out, size_t n) {
  auto* r = static_cast<PngReader*>(png_get_io_ptr(png));
  if (n > r->size - r->pos) {
    r->truncated = true;
    png_error(png, "truncated PNG data (the file ends before the image does)");
  }
  std::memcpy(out, r->data + r->pos, n);
  r->pos += n;
}

void png_on_error(png_structp png, png_const_charp msg) {
  auto* r = static_cast<PngReader*>(png_get_error_ptr(png));
  std::snprintf(r->msg, sizeof r->msg, "%s", msg);
  png_longjmp(png, 1);
}

void png_on_warning(png_structp, png_const_charp) {}

struct PngJob {
  png_structp png;
  png_infop info;
  PngReader rd;
  png_uint_32 w, h;
  int depth, color, interlace;
  uint8_t palette[256 * 3];
};

bool png_header(PngJob* j) {
  if (setjmp(png_jmpbuf(j->png))) return false;
  png_set_read_fn(j->png, &j->rd, png_on_read);
  png_set_check_for_invalid_index(j->png, 0);  // PIL accepts indices past the palette (black)
  png_read_info(j->png, j->info);
  png_get_IHDR(j->png, j->info, &j->w, &j->h, &j->depth, &j->color, &j->interlace, nullptr, nullptr);
  if (j->color == PNG_COLOR_TYPE_PALETTE) {
    png_colorp pal = nullptr;
    int n = 0;
    if (png_get_PLTE(j->png, j->info, &pal, &n) & PNG_INFO_PLTE) {
      for (int i = 0; i < n && i < 256; ++i) {
        j->palette[3 * i] = pal[i].red;
        j->palette[3 * i + 1] = pal[i].green;
        j->palette[3 * i + 2] = pal[i].blue;
      }
    }
  }
  if (j->depth < 8) png_set_packing(j->png);  // one byte per sample, values unscaled
  png_set_interlace_handling(j->png);
  png_read_update_info(j->png, j->info);
  return true;
}

bool png_body(PngJob* j, png_bytepp rows) {
  if (setjmp(png_jmpbuf(j->png))) return false;
  png_read_image(j->png, rows);
  // No png_read_end: PIL stops once the pixels are read and does not need the chunks after them.
  return true;
}

// Converts rows of unpacked samples (1 byte each below 16 bits, big-endian pairs at 16) to RGB.
void png_to_rgb(const PngJob& j, const uint8_t* raw, size_t raw_stride, ImageU8& img) {
  const int spp = j.color == PNG_COLOR_TYPE_GRAY ? 1 : j.color == PNG_COLOR_TYPE_GRAY_ALPHA ? 2
                : j.color == PNG_COLOR_TYPE_RGB ? 3 : j.color == PNG_COLOR_TYPE_RGB_ALPHA ? 4 : 1;
  const int bps = j.depth == 16 ? 2 : 1;
  for (int y = 0; y < img.h; ++y) {
    const uint8_t* s = raw + size_t(y) * raw_stride;
    uint8_t* d = img.px.data() + size_t(y) * img.w * 3;
    for (int x = 0; x < img.w; ++x, s += spp * bps, d += 3) {
      switch (j.color) {
        case PNG_COLOR_TYPE_PALETTE: {
          const uint8_t* p = j.palette + 3 * s[0];
          d[0] = p[0], d[1] = p[1], d[2] = p[2];
          break;
        }
        case PNG_COLOR_TYPE_GRAY:
        case PNG_COLOR_TYPE_GRAY_ALPHA: {
          int v = s[0];
          if (j.depth == 16) {
            // Grey 16 is PIL's "I;16": convert("RGB") clips the value to 255. Grey+alpha 16 is
            // read as "LA;16B", which keeps the high byte.
            v = j.color == PNG_COLOR_TYPE_GRAY ? std::min((s[0] << 8) | s[1], 255) : s[0];
          } else if (j.depth == 1) {
            v = v ? 255 : 0;
          } else if (j.depth == 2) {
            v *= 85;
          } else if (j.depth == 4) {
            v *= 17;
          }
          d[0] = d[1] = d[2] = uint8_t(v);
          break;
        }
        default:  // RGB, RGBA: the first byte of each sample is its value or its high byte
          d[0] = s[0], d[1] = s[bps], d[2] = s[2 * bps];
      }
    }
  }
}

ImageU8 decode_png(const uint8_t* data, size_t size, const std::string& name) {
  PngJob j;
  std::memset(&j, 0, sizeof j);
  j.rd.data = data;
  j.rd.size = size;
  j.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &j.rd, png_on_error, png_on_warning);
  if (!j.png) fail("image '", name, "': out of memory creating the PNG reader");
  j.info = png_create_info_struct(j.png);
  struct Destroy {
    PngJob* j;
    ~Destroy() { png_destroy_read_struct(&j->png, j->info ? &j->info : nullptr, nullptr); }
  } destroy{&j};
  if (!j.info) fail("image '", name, "': out of memory creating the PNG reader");

  if (!png_header(&j)) fail("image '", name, "': cannot read PNG header: ", j.rd.msg);
  check_dims(j.w, j.h, name);
  ImageU8 img;
  img.w = int(j.w);
  img.h = int(j.h);
  img.c = 3;
  img.px.resize(img.bytes());

  const size_t stride = png_get_rowbytes(j.png, j.info);
  const bool direct = j.color == PNG_COLOR_TYPE_RGB && j.depth == 8;  // rows are already RGB
  std::vector<uint8_t> raw(direct ? 0 : stride * img.h);
  uint8_t* base = direct ? img.px.data() : raw.data();
  std::vector<png_bytep> rows(img.h);
  for (int y = 0; y < img.h; ++y) rows[y] = base + size_t(y) * stride;
  if (!png_body(&j, rows.data())) fail("image '", name, "': ", j.rd.truncated ? "" : "corrupt PNG data: ", j.rd.msg);
  if (!direct) png_to_rgb(j, raw.data(), stride, img);
  return img;
}

}  // namespace

ImageU8 decode_image_memory(const uint8_t* data, size_t size, const std::string& name) {
  static const uint8_t kPng[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) return decode_jpeg(data, size, name);
  if (size >= 8 && std::memcmp(data, kPng, 8) == 0) return decode_png(data, size, name);
  if (size == 0) fail("image '", name, "': the file is empty");
  char head[32] = {0};
  for (size_t i = 0; i < size && i < 8; ++i) std::snprintf(head + 3 * i, 4, i + 1 < size && i < 7 ? "%02x " : "%02x", data[i]);
  fail("image '", name, "': not a JPEG or PNG file (it starts with bytes ", head, ")");
}

ImageU8 decode_image_file(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) fail("image '", path, "': cannot open the file: ", std::strerror(errno));
  struct Close {
    FILE* f;
    ~Close() { std::fclose(f); }
  } closer{f};
  struct stat st;
  if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) fail("image '", path, "': is a directory, not an image file");
  std::vector<uint8_t> bytes;
  if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode)) bytes.reserve(size_t(st.st_size));
  uint8_t buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) bytes.insert(bytes.end(), buf, buf + n);
  if (std::ferror(f)) fail("image '", path, "': cannot read the file: ", std::strerror(errno));
  return decode_image_memory(bytes.data(), bytes.size(), path);
}

}  // namespace tv
