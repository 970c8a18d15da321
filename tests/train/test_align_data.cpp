// Phase-2 data: COCO and JSONL caption files, the caption layout with and without <image> in the
// tokenizer, the image feature stream's handling of unreadable images, and `tinyvlm encode-image`.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdio>
#include <cstring>

#include "data/captions.h"
#include "data/feature_cache.h"
#include "data/image.h"
#include "io/safetensors.h"
#include "model/vit.h"
#include "test_align_util.h"
#include "tokenizer/bpe.h"
#include "train/image_features.h"

using namespace tv;
using namespace tv::align_test;

namespace {

int run_cli(const std::string& args, std::string* err = nullptr) {
  const std::string errfile = world().fresh("stderr") + ".txt";
  const std::string cmd = std::string(TV_TINYVLM_BIN) + " " + args + " >/dev/null 2>" + errfile;
  const int rc = std::system(cmd.c_str());
  if (err) *err = read_file(errfile);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

const std::string kFixtures = TV_FIXTURE_DIR;

}  // namespace

TEST(AlignData, CocoCaptions) {
  const std::string dir = world().fresh("coco");
  fs::create_directories(dir);
  write_file_atomic(dir + "/captions_train2017.json", R"({
    "info": {}, "licenses": [],
    "images": [{"id": 9, "file_name": "000000000009.jpg", "height": 480, "width": 640},
               {"id": 25, "file_name": "000000000025.jpg"}],
    "annotations": [{"image_id": 25, "id": 1, "caption": "A giraffe eating leaves."},
                    {"image_id": 9, "id": 2, "caption": "Food in bowls."},
                    {"image_id": 25, "id": 3, "caption": "A tall giraffe."}]})");
  CaptionSet s = load_captions(dir + "/captions_train2017.json", "/data/coco/train2017");
  ASSERT_EQ(s.samples.size(), 3u);
  ASSERT_EQ(s.images.size(), 2u);
  EXPECT_EQ(s.images[0], "/data/coco/train2017/000000000025.jpg");  // by first appearance
  EXPECT_EQ(s.samples[1].caption, "Food in bowls.");
  EXPECT_EQ(s.samples[2].image, 0);

  CaptionSet train, val;
  split_by_image(s, 0.5, train, val);
  EXPECT_EQ(train.samples.size(), 2u);
  ASSERT_EQ(val.samples.size(), 1u);
  EXPECT_EQ(val.images[size_t(val.samples[0].image)], "/data/coco/train2017/000000000009.jpg");

  write_file_atomic(dir + "/bad.json", R"({"images": [{"id": 1, "file_name": "a.jpg"}],
    "annotations": [{"image_id": 2, "caption": "x"}]})");
  try {
    load_captions(dir + "/bad.json", "");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("bad.json"), std::string::npos) << m;
    EXPECT_NE(m.find("image_id 2"), std::string::npos) << m;
  }
}

TEST(AlignData, JsonlCaptions) {
  const std::string dir = world().fresh("jsonl");
  fs::create_directories(dir);
  write_file_atomic(dir + "/c.jsonl", "{\"image\": \"x/a.png\", \"caption\": \"one\"}\n\n"
                                      "{\"image\": \"/abs/b.png\", \"caption\": [\"two\", \"three\"]}\r\n"
                                      "{\"image\": \"x/a.png\", \"caption\": \"four\"}\n");
  CaptionSet s = load_captions(dir + "/c.jsonl", "");
  ASSERT_EQ(s.samples.size(), 4u);
  ASSERT_EQ(s.images.size(), 2u);
  EXPECT_EQ(s.images[0], (fs::path(dir) / "x/a.png").string());  // relative to the JSONL file
  EXPECT_EQ(s.images[1], "/abs/b.png");
  EXPECT_EQ(s.samples[3].image, 0);
  EXPECT_EQ(s.samples[2].caption, "three");
  write_file_atomic(dir + "/bad.jsonl", "{\"image\": \"a.png\", \"caption\": \"ok\"}\n{\"image\": 3}\n");
  try {
    load_captions(dir + "/bad.jsonl", "");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:2"), std::string::npos) << e.what();
  }
}

TEST(AlignData, CaptionLayout) {
  World& w = world();
  tok::Tokenizer tk = tok::Tokenizer::load(w.tokenizer);
  CaptionFormat f = caption_format(tk, w.vocab, 8, w.tokenizer);
  EXPECT_FALSE(f.tokenizer_has_image);
  EXPECT_EQ(f.image_id, w.vocab);
  EXPECT_EQ(f.eos_id, 2);
  EXPECT_EQ(f.pad_id, 3);
  const std::string cap = "a red circle on a blue background";
  std::vector<int32_t> ids = format_caption(tk, cap, f);
  std::vector<int32_t> body = tk.encode(" " + cap);
  ASSERT_GT(body.size(), 6u);
  ASSERT_EQ(ids.size(), 8u);  // <image>, 6 caption tokens (cut), EOS
  EXPECT_EQ(ids[0], w.vocab);
  EXPECT_TRUE(std::equal(ids.begin() + 1, ids.end() - 1, body.begin()));
  EXPECT_EQ(ids.back(), 2);

  // A tokenizer that knows <image> (as the original's bpe_tokenizer_with_image_tag.json) gives the same ids.
  tok::Tokenizer with = tk;
  ASSERT_EQ(with.add_special_token("<image>"), w.vocab);
  CaptionFormat g = caption_format(with, w.vocab, 8, "with-image");
  EXPECT_TRUE(g.tokenizer_has_image);
  EXPECT_EQ(format_caption(with, cap, g), ids);
  CaptionSet set;
  set.images = {"a.png"};
  set.samples = {{0, cap}, {0, "a"}};
  CaptionTokens t1 = tokenize_captions(tk, set, f, 1), t2 = tokenize_captions(with, set, g, 1);
  EXPECT_EQ(t1.ids, t2.ids);
  std::vector<int32_t> bi, bl;
  caption_batch(t1, {1}, f, bi, bl);
  std::vector<int32_t> want = {int32_t(w.vocab)};
  for (int32_t x : tk.encode(" a")) want.push_back(x);
  want.push_back(2);
  while (want.size() < 8) want.push_back(3);
  EXPECT_EQ(bi, want);
  EXPECT_EQ(bl[0], -100);
  EXPECT_EQ(bl[1], want[1]);
  EXPECT_EQ(bl.back(), -100);

  // <image> anywhere but right after the text vocabulary cannot match the model.
  EXPECT_THROW(caption_format(with, w.vocab + 1, 8, "x"), Error);
  EXPECT_THROW(caption_format(tk, w.vocab - 1, 8, "x"), Error);
}

TEST(AlignData, UnreadableImagesAreSkippedAndNamed) {
  World& w = world();
  Config cfg = Config::from_file(w.config);
  ParamStore params;
  VisionTower tower(VisionConfig::from(cfg), params);
  params.set_trainable("", false);
  tower.load(SafetensorsFile(w.vit));
  const std::string good = w.images + "/img0000.png", good2 = w.images + "/img0001.png";
  const std::string missing = w.images + "/missing.jpg", corrupt = w.images + "/corrupt.png";
  const std::string truncated = kFixtures + "/images/truncated.jpg";
  for (bool cached : {false, true}) {
    std::unique_ptr<FeatureCache> cache;
    if (cached) cache = std::make_unique<FeatureCache>(world().fresh("fc"), tower.fingerprint(), 4, 16);
    ImageFeatureSource src(tower, cache.get(), 2, 8);
    ImageFeatureStream s(src, {good, missing, corrupt, truncated, good2, good});
    std::vector<size_t> used;
    int64_t skipped = 0;
    Tensor f = s.take(5, used, &skipped);
    EXPECT_EQ(used, (std::vector<size_t>{0, 4, 5}));
    EXPECT_EQ(skipped, 3);
    ASSERT_EQ(f.size(0), 3);
    EXPECT_TRUE(s.done());
    // The same image twice in a request: identical features; and they are the tower's (bf16 when cached).
    EXPECT_EQ(std::memcmp(f.select(0).raw(), f.select(2).raw(), 4 * 16 * sizeof(float)), 0);
    Tensor px = Tensor::empty({1, 3, 32, 32});
    preprocess_image_file(good, px.data<float>(), 36, 32);
    Tensor direct = tower.forward(px);
    if (cached) FeatureCache::round_bf16(direct.data<float>(), size_t(direct.numel()));
    EXPECT_EQ(std::memcmp(f.select(0).raw(), direct.raw(), direct.nbytes()), 0);
    auto bad = src.bad_images();
    ASSERT_EQ(bad.size(), 3u);
    for (const std::string& p : {missing, corrupt, truncated}) {
      ASSERT_TRUE(bad.count(p)) << p;
      EXPECT_NE(bad.at(p).find(p), std::string::npos) << "the error names the file: " << bad.at(p);
    }
    EXPECT_NE(bad.at(truncated).find("truncated"), std::string::npos) << bad.at(truncated);
    EXPECT_NE(src.bad_report().find("3 images could not be read"), std::string::npos) << src.bad_report();
    if (cached) {
      // A second pass reads both images from the cache without running the tower.
      int64_t before = src.tower_images();
      ImageFeatureStream again(src, {good2, good});
      std::vector<size_t> u2;
      Tensor f2 = again.take(2, u2);
      EXPECT_EQ(src.tower_images(), before);
      EXPECT_EQ(std::memcmp(f2.select(1).raw(), f.select(0).raw(), 4 * 16 * sizeof(float)), 0);
    }
  }
}

TEST(AlignData, FeatureCacheRefusesStaleAndDamagedFiles) {
  const std::string dir = world().fresh("stale");
  fs::create_directories(dir);
  const std::string img = dir + "/a.png";
  fs::copy_file(world().images + "/img0002.png", img);
  FeatureCache c(dir + "/cache", 42, 2, 3);
  std::vector<float> x = {1.0f, -2.5f, 3.14159f, 0.1f, 1e-3f, 65504.0f}, y(6);
  EXPECT_FALSE(c.load(img, y.data()));
  c.store(img, x.data());
  ASSERT_TRUE(c.has(img));
  ASSERT_TRUE(c.load(img, y.data()));
  std::vector<float> r = x;
  FeatureCache::round_bf16(r.data(), r.size());
  EXPECT_EQ(y, r);
  EXPECT_NE(FeatureCache(dir + "/cache", 43, 2, 3).dir(), c.dir()) << "another tower, another folder";
  EXPECT_FALSE(FeatureCache(dir + "/cache", 42, 3, 2).load(img, y.data())) << "another shape";
  // A damaged file is refused (and a later store replaces it).
  {
    std::ofstream f(c.file_for(img), std::ios::binary | std::ios::trunc);
    f << "garbage";
  }
  EXPECT_FALSE(c.load(img, y.data()));
  c.store(img, x.data());
  EXPECT_TRUE(c.load(img, y.data()));
  // The image changed after its features were stored: stale.
  fs::copy_file(world().images + "/img0003.png", img, fs::copy_options::overwrite_existing);
  fs::last_write_time(img, fs::last_write_time(img) + std::chrono::seconds(5));
  EXPECT_FALSE(c.load(img, y.data()));
}

TEST(AlignData, EncodeImageCommand) {
  World& w = world();
  const std::string dir = w.fresh("encode");
  fs::create_directories(dir);
  const std::string photo = kFixtures + "/images/photo_444.jpg";
  // Pixels: ViT-B/16 preprocessing by default.
  ASSERT_EQ(run_cli("encode-image --image " + photo + " --out " + dir + "/p.safetensors --pixels-only --threads 1"), 0);
  Tensor px = SafetensorsFile(dir + "/p.safetensors").get("pixels");
  ASSERT_EQ(px.shape(), (Shape{3, 224, 224}));
  std::vector<float> want(3 * 224 * 224);
  preprocess_image_file(photo, want.data());
  EXPECT_EQ(std::memcmp(px.raw(), want.data(), px.nbytes()), 0);
  // Features through the tiny tower of the fixtures.
  ASSERT_EQ(run_cli("encode-image --image " + photo + " --out " + dir + "/f.safetensors --vit " + w.vit + " --config " +
                    w.config + " --threads 1"),
            0);
  Tensor feats = SafetensorsFile(dir + "/f.safetensors").get("features");
  ASSERT_EQ(feats.shape(), (Shape{4, 16}));
  ParamStore params;
  VisionTower tower(VisionConfig::from(Config::from_file(w.config)), params);
  tower.load(SafetensorsFile(w.vit));
  Tensor p = Tensor::empty({1, 3, 32, 32});
  preprocess_image_file(photo, p.data<float>(), 36, 32);
  Tensor direct = tower.forward(p);
  EXPECT_EQ(std::memcmp(feats.raw(), direct.raw(), feats.nbytes()), 0);
  // A truncated file and a file that is no image: a clear error naming the file, exit status 1.
  for (const char* bad : {"truncated.jpg", "not_an_image.jpg", "does_not_exist.png"}) {
    std::string err;
    const std::string path = kFixtures + "/images/" + bad;
    EXPECT_EQ(run_cli("encode-image --image " + path + " --out " + dir + "/x.safetensors --pixels-only", &err), 1) << bad;
    EXPECT_NE(err.find(path), std::string::npos) << err;
  }
  std::string err;
  EXPECT_NE(run_cli("encode-image --image " + photo + " --out " + dir + "/x.safetensors", &err), 0);
  EXPECT_NE(err.find("--vit"), std::string::npos) << err;
}
