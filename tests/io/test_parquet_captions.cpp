// Image-caption data from Parquet: samples per caption (a string column or a list-of-strings column), images
// extracted byte for byte and shared by identical content, and `align` training on it with the corrupt image
// skipped and counted.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "data/captions.h"
#include "data/image.h"
#include "train/align.h"
#include "train/test_align_util.h"

using namespace tv;
namespace fs = std::filesystem;

namespace {

std::string pq_fixture(const std::string& name) { return std::string(TV_FIXTURE_DIR) + "/parquet/" + name; }

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string unhex(const std::string& h) {
  std::string out;
  for (size_t i = 0; i + 1 < h.size(); i += 2) out += char(std::stoi(h.substr(i, 2), nullptr, 16));
  return out;
}

std::string temp_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("tinyvlm_pqcap_" + std::to_string(getpid()) + "_" + name);
  fs::remove_all(d);
  return d.string();
}

}  // namespace

TEST(ParquetCaptions, OneSamplePerCaptionAndImagesExtractedExactly) {
  const nlohmann::json want = nlohmann::json::parse(read_all(pq_fixture("captions.json")));
  const std::string dir = temp_dir("extract");
  CaptionSet s = load_captions(pq_fixture("captions.parquet"), dir);  // default columns: image, caption
  ASSERT_EQ(s.images.size(), 10u);
  ASSERT_EQ(s.samples.size(), 10u);
  for (size_t i = 0; i < 10; ++i) {
    EXPECT_EQ(read_all(s.images[size_t(s.samples[i].image)]), unhex(want["columns"]["image"][i]["bytes"]["hex"]));
    EXPECT_EQ(s.samples[i].caption, unhex(want["columns"]["caption"][i]["hex"]));
  }
  // The list column: one sample per caption, all sharing their row's image.
  CaptionSet l = load_captions(pq_fixture("captions.parquet"), dir, "image", "sentences");
  size_t n = 0;
  for (const auto& row : want["columns"]["sentences"]) n += row.size();
  ASSERT_EQ(l.samples.size(), n);
  EXPECT_EQ(l.images.size(), 10u);
  EXPECT_EQ(l.images, s.images);  // same content, same extracted files
  EXPECT_EQ(l.samples[1].image, l.samples[2].image);
  // The images decode from their extracted bytes; the corrupt one is an error (skipped by align).
  EXPECT_EQ(decode_image_file(s.images[1]).w, 21);
  EXPECT_THROW(decode_image_file(s.images[6]), Error);
  // A caption column that is not text.
  try {
    load_captions(pq_fixture("captions.parquet"), dir, "image", "cocoid");
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("column 'cocoid', chunk at byte"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

TEST(ParquetCaptions, AlignTrainsOnParquetAndCountsTheCorruptImage) {
  align_test::World& w = align_test::world();
  AlignOptions o;
  o.config = w.config;
  o.llm = w.llm;
  o.vit = w.vit;
  o.captions = pq_fixture("captions.parquet");
  o.images = temp_dir("align_images");
  o.caption_column = "sentences";
  o.out = w.fresh("parquet");
  o.quiet = true;
  o.threads = -1;
  o.steps = 4;
  AlignResult r = align(o);
  EXPECT_EQ(r.steps_done, 4);
  EXPECT_EQ(r.train_samples + r.val_samples, 19);
  EXPECT_EQ(r.bad_images, 1);  // row 6's bytes are not an image
  fs::remove_all(o.images);
}
