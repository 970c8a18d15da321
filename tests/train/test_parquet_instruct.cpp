// Phase-3 data from Parquet in the LLaVA layout: the same samples (ids, turns, images) as the same rows as
// LLaVA JSON, image names in a string column looked up as the original does, the COCO filter on the image
// structs' paths, folders and globs, and a short `instruct` run (and `eval`) with the corrupt image inside a
// row skipped and counted.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "data/image.h"
#include "data/instruct_data.h"
#include "test_align_util.h"
#include "train/align.h"
#include "train/evaluate.h"
#include "train/instruct.h"

using namespace tv;
using namespace tv::align_test;

namespace {

std::string pq_fixture(const std::string& name) { return std::string(TV_FIXTURE_DIR) + "/parquet/" + name; }

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string unhex(const nlohmann::json& v) {
  const std::string h = v["hex"].get<std::string>();
  std::string out;
  for (size_t i = 0; i + 1 < h.size(); i += 2) out += char(std::stoi(h.substr(i, 2), nullptr, 16));
  return out;
}

std::map<std::string, std::string> by_id(const std::vector<SkippedSample>& s) {
  std::map<std::string, std::string> m;
  for (const auto& x : s) m[x.id] = x.reason;
  return m;
}

}  // namespace

TEST(ParquetInstruct, SameSamplesAsTheSameRowsAsJson) {
  // llava.parquet's rows (as pyarrow reads them) written as LLaVA JSON, with the images as files.
  const nlohmann::json cols = nlohmann::json::parse(slurp(pq_fixture("llava.json")))["columns"];
  const fs::path dir = world().fresh("pqi_json");
  fs::create_directories(dir / "images");
  nlohmann::json records = nlohmann::json::array();
  for (size_t i = 0; i < cols["id"].size(); ++i) {
    nlohmann::json r = {{"id", unhex(cols["id"][i])}, {"conversations", nlohmann::json::array()}};
    for (const auto& t : cols["conversations"][i]) r["conversations"].push_back({{"from", unhex(t["from"])}, {"value", unhex(t["value"])}});
    if (!cols["image"][i].is_null()) {
      const std::string name = unhex(cols["image"][i]["path"]);
      r["image"] = name;
      write_file_atomic((dir / "images" / name).string(), unhex(cols["image"][i]["bytes"]));
    }
    records.push_back(r);
  }
  const std::string json = (dir / "llava.json").string();
  write_file_atomic(json, records.dump());

  const InstructLoadOptions all{false};  // the fixture's names are not COCO names
  const InstructSet a = load_instruct(json, (dir / "images").string(), all);
  const std::string extracted = (dir / "extracted").string();
  const InstructSet b = load_instruct(pq_fixture("llava.parquet"), extracted, all);
  EXPECT_EQ(b.records, a.records);
  EXPECT_EQ(b.records, 8);
  ASSERT_EQ(a.samples.size(), 7u);  // row 5 has no image
  ASSERT_EQ(b.samples.size(), a.samples.size());
  for (size_t i = 0; i < a.samples.size(); ++i) {
    EXPECT_EQ(b.samples[i].id, a.samples[i].id);
    ASSERT_EQ(b.samples[i].turns.size(), a.samples[i].turns.size()) << a.samples[i].id;
    for (size_t k = 0; k < a.samples[i].turns.size(); ++k) {
      EXPECT_EQ(b.samples[i].turns[k].user, a.samples[i].turns[k].user);
      EXPECT_EQ(b.samples[i].turns[k].message, a.samples[i].turns[k].message);
    }
    // The image written into --images holds exactly the row's bytes.
    EXPECT_EQ(fs::path(b.samples[i].image).parent_path(), fs::path(extracted));
    EXPECT_EQ(slurp(b.samples[i].image), slurp(a.samples[i].image)) << a.samples[i].id;
  }
  EXPECT_EQ(by_id(b.skipped), by_id(a.skipped));
  EXPECT_EQ(by_id(b.skipped).at("000005"), "no image");
  // The default COCO filter reads the structs' paths: none of these names COCO.
  const InstructSet coco = load_instruct(pq_fixture("llava.parquet"), extracted);
  EXPECT_EQ(coco.samples.size(), 0u);
  EXPECT_EQ(coco.not_coco, 7);
}

TEST(ParquetInstruct, CocoFilterIntegerIdsFoldersGlobsAndTheCorruptImage) {
  const std::string extracted = world().fresh("pqi_coco");
  const InstructSet s = load_instruct(pq_fixture("llava_coco.parquet"), extracted);
  EXPECT_EQ(s.records, 12);
  EXPECT_EQ(s.not_coco, 1);  // row 7: ocr_vqa
  ASSERT_EQ(s.samples.size(), 11u);  // row 8 has no path to filter on and is kept
  EXPECT_TRUE(s.skipped.empty());
  std::vector<std::string> ids;
  for (const auto& x : s.samples) ids.push_back(x.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"100", "101", "102", "103", "104", "105", "106", "108", "109", "110", "111"}));
  EXPECT_EQ(s.samples[0].turns.size(), 4u);
  EXPECT_TRUE(s.samples[0].turns[0].user);
  EXPECT_FALSE(s.samples[0].turns[1].user);
  // The images decode from their extracted bytes, except row 3's: the decoder refuses it, so training skips it.
  for (const auto& x : s.samples)
    if (x.id == "103")
      EXPECT_THROW(decode_image_file(x.image), Error);
    else
      EXPECT_NO_THROW(decode_image_file(x.image)) << x.id;
  // A folder and a glob give the same samples.
  const fs::path dir = world().fresh("pqi_folder");
  fs::create_directories(dir);
  fs::copy_file(pq_fixture("llava_coco.parquet"), dir / "part-0.parquet");
  for (const std::string& input : {dir.string(), (dir / "part-*.parquet").string()}) {
    const InstructSet f = load_instruct(input, extracted);
    ASSERT_EQ(f.samples.size(), s.samples.size()) << input;
    for (size_t i = 0; i < s.samples.size(); ++i) {
      EXPECT_EQ(f.samples[i].id, s.samples[i].id);
      EXPECT_EQ(f.samples[i].image, s.samples[i].image);
    }
  }
}

TEST(ParquetInstruct, ImageNamesAreLookedUpInTheImageFolder) {
  // llava_names.parquet: `image` is a file name, no `id` column.
  const fs::path dir = world().fresh("pqi_names");
  const std::string png = slurp(world().images + "/img0000.png");
  fs::create_directories(dir / "train2017");
  for (int i : {0, 1, 3}) {  // row 5's file is missing
    char name[64];
    std::snprintf(name, sizeof name, "COCO_train2014_%012d.jpg", i);
    write_file_atomic((dir / "train2017" / name).string(), png);
  }
  const InstructSet s = load_instruct(pq_fixture("llava_names.parquet"), dir.string());
  EXPECT_EQ(s.records, 6);
  EXPECT_EQ(s.not_coco, 1);  // row 4: gqa
  ASSERT_EQ(s.samples.size(), 3u);
  EXPECT_EQ(s.samples[0].id, "llava_names.parquet:0");
  EXPECT_EQ(s.samples[2].id, "llava_names.parquet:3");
  EXPECT_EQ(s.samples[2].image, (dir / "train2017" / "COCO_train2014_000000000003.jpg").string());
  ASSERT_EQ(s.samples[1].turns.size(), 2u);
  EXPECT_EQ(s.samples[1].turns[0].message.find("<image>"), 0u);
  const auto skipped = by_id(s.skipped);
  ASSERT_EQ(skipped.size(), 2u);
  EXPECT_EQ(skipped.at("llava_names.parquet:2"), "no image");
  EXPECT_EQ(skipped.at("llava_names.parquet:5"), "image not found: COCO_train2014_000000000005.jpg");
  EXPECT_NE(skipped_report(s.skipped).find("1 image not found"), std::string::npos);
}

TEST(ParquetInstruct, ShortRunSkipsAndCountsTheCorruptImage) {
  AlignOptions ao;
  ao.config = world().config;
  ao.llm = world().llm;
  ao.vit = world().vit;
  ao.captions = world().captions;
  ao.images = world().images;
  ao.out = world().fresh("pqi_phase2");
  ao.quiet = true;
  ao.threads = -1;
  ao.steps = 1;
  align(ao);

  InstructOptions o;
  o.model = checkpoint_path(ao.out, "best");
  o.data = pq_fixture("llava_coco.parquet");
  o.images = world().fresh("pqi_images");
  o.out = world().fresh("pqi_run");
  o.quiet = true;
  o.threads = -1;
  o.steps = 6;  // more than an epoch of 11 samples in batches of 2: every training row is seen
  o.sets = {"instruct_batch_size=2", "instruct_max_seq_len=48", "instruct_learning_rate=0.003", "instruct_warmup_steps=1",
            "instruct_val_fraction=0", "instruct_log_interval=1000", "instruct_image_workers=2"};
  InstructResult r = instruct(o);
  EXPECT_EQ(r.steps_done, 6);
  EXPECT_EQ(r.not_coco, 1);
  EXPECT_EQ(r.train_samples, 11);
  // Row 3's image was written into --images like the others and refused by the decoder: skipped, counted, named.
  const InstructSet s = load_instruct(o.data, o.images);
  std::string corrupt;
  for (const auto& x : s.samples)
    if (x.id == "103") corrupt = x.image;
  ASSERT_FALSE(corrupt.empty());
  ASSERT_EQ(r.skipped.size(), 1u);
  EXPECT_EQ(r.skipped[0].id, corrupt);
  EXPECT_EQ(r.skipped[0].reason.find("unreadable image"), 0u) << r.skipped[0].reason;
  EXPECT_NE(slurp((fs::path(o.out) / "skipped_samples.tsv").string()).find(corrupt), std::string::npos);
  for (const auto& [step, loss] : train_losses(o.out)) EXPECT_TRUE(std::isfinite(loss)) << step;

  // `eval --task instruct` on the same Parquet data.
  EvalOptions e;
  e.model = checkpoint_path(o.out, "last");
  e.task = "instruct";
  e.data = o.data;
  e.images = o.images;
  e.threads = -1;
  e.sets = {"instruct_batch_size=2", "instruct_max_seq_len=48"};
  EvalReport rep = evaluate(e);
  EXPECT_EQ(rep.records, 12);
  EXPECT_EQ(rep.stats.samples, 10);  // 11 COCO samples less the corrupt image
  EXPECT_TRUE(std::isfinite(rep.stats.token_mean));
}
