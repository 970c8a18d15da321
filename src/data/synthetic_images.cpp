#include "data/synthetic_images.h"

#include <png.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/rng.h"
#include "io/atomic_file.h"

namespace tv {

void write_png_rgb(const std::string& path, const ImageU8& rgb) {
  TV_CHECK(rgb.c == 3 && rgb.px.size() == rgb.bytes(), "write_png_rgb: an RGB image is expected");
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) fail(path, ": cannot create the file");
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!png || !info || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    std::fclose(f);
    fail(path, ": cannot write the PNG");
  }
  png_init_io(png, f);
  png_set_IHDR(png, info, png_uint_32(rgb.w), png_uint_32(rgb.h), 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < rgb.h; ++y)
    png_write_row(png, const_cast<png_bytep>(rgb.px.data() + size_t(y) * size_t(rgb.w) * 3));
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  if (std::fclose(f) != 0) fail(path, ": cannot write the PNG");
}

namespace {

struct Colour {
  const char* name;
  uint8_t r, g, b;
};
const Colour kColours[] = {{"red", 220, 30, 30},   {"green", 30, 170, 40}, {"blue", 30, 60, 220},
                           {"yellow", 235, 215, 40}, {"white", 245, 245, 245}, {"black", 15, 15, 15}};
const char* kShapes[] = {"circle", "square", "triangle", "stripe"};

bool inside(int shape, double x, double y) {  // x, y in [-1, 1] around the shape's centre
  switch (shape) {
    case 0: return x * x + y * y <= 1.0;
    case 1: return std::abs(x) <= 0.85 && std::abs(y) <= 0.85;
    case 2: return y <= 0.9 && y >= -0.9 && std::abs(x) <= (y + 0.9) / 1.8;
    default: return std::abs(y) <= 0.3;
  }
}

}  // namespace

SyntheticCaptionSet make_synthetic_captions(const std::string& dir, int n_images, int size, int captions_per_image,
                                            uint64_t seed) {
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  Rng rng(seed);
  SyntheticCaptionSet out;
  std::string jsonl;
  const int nc = int(sizeof kColours / sizeof kColours[0]), ns = int(sizeof kShapes / sizeof kShapes[0]);
  for (int i = 0; i < n_images; ++i) {
    const int bg = int(rng.below(uint64_t(nc)));
    int fg = int(rng.below(uint64_t(nc - 1)));
    if (fg >= bg) ++fg;
    const int shape = int(rng.below(uint64_t(ns)));
    const bool big = rng.uniform() < 0.5;
    const double radius = size * (big ? 0.36 : 0.2), cx = size * rng.uniform(0.35, 0.65), cy = size * rng.uniform(0.35, 0.65);
    ImageU8 img;
    img.w = img.h = size;
    img.c = 3;
    img.px.resize(img.bytes());
    for (int y = 0; y < size; ++y)
      for (int x = 0; x < size; ++x) {
        const Colour& c = inside(shape, (x + 0.5 - cx) / radius, (y + 0.5 - cy) / radius) ? kColours[fg] : kColours[bg];
        uint8_t* p = &img.px[(size_t(y) * size_t(size) + size_t(x)) * 3];
        const int noise = int(rng.below(9)) - 4;
        p[0] = uint8_t(std::clamp(c.r + noise, 0, 255));
        p[1] = uint8_t(std::clamp(c.g + noise, 0, 255));
        p[2] = uint8_t(std::clamp(c.b + noise, 0, 255));
      }
    char name[32];
    std::snprintf(name, sizeof name, "img%04d.png", i);
    write_png_rgb((fs::path(dir) / name).string(), img);
    out.images.push_back((fs::path(dir) / name).string());
    const std::string f = kColours[fg].name, b = kColours[bg].name, s = kShapes[shape];
    out.scenes.push_back({f, b, s, big, cx / size, cy / size});
    const std::string forms[] = {"a " + f + " " + s + " on a " + b + " background",
                                 std::string("a ") + (big ? "big " : "small ") + f + " " + s,
                                 "there is a " + f + " " + s + " in the picture", b + " background with a " + f + " " + s};
    nlohmann::json caps = nlohmann::json::array();
    for (int k = 0; k < captions_per_image; ++k) {
      caps.push_back(forms[(i + k) % 4]);
      out.texts.push_back(forms[(i + k) % 4]);
    }
    jsonl += nlohmann::json{{"image", name}, {"caption", caps}}.dump() + "\n";
  }
  out.captions = (fs::path(dir) / "captions.jsonl").string();
  write_file_atomic(out.captions, jsonl);
  return out;
}

std::vector<SyntheticQuestion> synthetic_questions(const SyntheticScene& sc) {
  return {{"colour", "What colour is the shape?", sc.colour},
          {"shape", "What shape is in the picture?", sc.shape},
          {"background", "What colour is the background?", sc.background},
          {"size", "Is the shape big or small?", sc.big ? "big" : "small"},
          {"position", "Is the shape on the left or on the right?", sc.cx < 0.5 ? "left" : "right"}};
}

std::vector<std::string> synthetic_conversation_texts() {
  std::vector<std::string> out;
  SyntheticScene any;
  for (const SyntheticQuestion& q : synthetic_questions(any)) out.push_back(" USER: " + q.question);
  for (const Colour& c : kColours) out.push_back(std::string(" ASSISTANT: ") + c.name);
  for (const char* shape : kShapes) out.push_back(std::string(" ASSISTANT: ") + shape);
  for (const char* w : {"big", "small", "left", "right"}) out.push_back(std::string(" ASSISTANT: ") + w);
  return out;
}

SyntheticConversationSet make_synthetic_conversations(const SyntheticCaptionSet& set, const std::string& dir, size_t n,
                                                      int per_image, uint64_t seed) {
  namespace fs = std::filesystem;
  TV_CHECK(n <= set.scenes.size() && set.scenes.size() == set.images.size(), "make_synthetic_conversations: ", n,
           " images asked of ", set.scenes.size());
  Rng rng(seed);
  SyntheticConversationSet out;
  std::string jsonl;
  for (size_t i = 0; i < n; ++i) {
    std::vector<SyntheticQuestion> qs = synthetic_questions(set.scenes[i]);
    for (int c = 0; c < per_image; ++c) {
      for (size_t k = qs.size() - 1; k > 0; --k) std::swap(qs[k], qs[rng.below(uint64_t(k + 1))]);
      const size_t turns = 1 + rng.below(2);
      nlohmann::json conv = nlohmann::json::array();
      for (size_t k = 0; k < turns; ++k) {
        const std::string q = (k == 0 ? "<image>\n" : "") + qs[k].question;
        conv.push_back({{"from", "human"}, {"value", q}});
        conv.push_back({{"from", "gpt"}, {"value", qs[k].answer}});
        out.texts.push_back(" USER: " + qs[k].question);
        out.texts.push_back(" ASSISTANT: " + qs[k].answer);
      }
      const std::string name = fs::path(set.images[i]).filename().string();
      jsonl += nlohmann::json{{"id", name + "#" + std::to_string(c)}, {"image", name}, {"conversations", conv}}.dump() + "\n";
    }
  }
  out.conversations = (fs::path(dir) / "conversations.jsonl").string();
  write_file_atomic(out.conversations, jsonl);
  return out;
}

}  // namespace tv
