// The Parquet reader against pyarrow: every value of every fixture (scripts/fixtures/parquet_fixtures.py)
// equals what pyarrow reads, and damaged files give errors naming the file, row group, column and offset.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "io/parquet.h"
#include "io/parquet_rows.h"

using namespace tv;
using nlohmann::json;

namespace {

std::string fixture(const std::string& name) { return std::string(TV_FIXTURE_DIR) + "/parquet/" + name; }

json load_json(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str());
}

std::string hex(std::string_view s) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out += d[c >> 4];
    out += d[c & 15];
  }
  return out;
}

// A value in the fixture's JSON form: strings and bytes as {"hex": ...}, structs as objects.
json to_json(const pq::Value& v) {
  switch (v.kind) {
    case pq::Value::Null: return nullptr;
    case pq::Value::Bool: return v.i != 0;
    case pq::Value::Int: return v.i;
    case pq::Value::Real: return v.d;
    case pq::Value::Bytes: return json{{"hex", hex(v.bytes)}};
    case pq::Value::List: {
      json a = json::array();
      for (const pq::Value& x : v.items) a.push_back(to_json(x));
      return a;
    }
    case pq::Value::Struct: {
      json o = json::object();
      for (const pq::Value& x : v.items) o[std::string(x.key)] = to_json(x);
      return o;
    }
  }
  return nullptr;
}

// Every field of `name`.parquet, all row groups, against `ref`.json.
void expect_matches_pyarrow(const std::string& name, const std::string& ref) {
  SCOPED_TRACE(name);
  pq::ParquetFile f(fixture(name + ".parquet"));
  const json want = load_json(fixture(ref + ".json"));
  EXPECT_EQ(f.num_rows(), want["num_rows"].get<int64_t>());
  ASSERT_EQ(f.nodes()[0].children.size(), want["columns"].size());
  for (const auto& [field, values] : want["columns"].items()) {
    json got = json::array();
    for (int g = 0; g < f.num_row_groups(); ++g) {
      pq::FieldValues fv = pq::read_field(f, g, field);
      EXPECT_EQ(int64_t(fv.rows.size()), f.row_group_rows(g));
      for (const pq::Value& v : fv.rows) got.push_back(to_json(v));
    }
    ASSERT_EQ(got.size(), values.size()) << field;
    for (size_t r = 0; r < got.size(); ++r) EXPECT_EQ(got[r], values[r]) << name << " field " << field << " row " << r;
  }
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Parquet, EachCodecMatchesPyarrow) {
  for (const char* c : {"none", "snappy", "gzip", "zstd"}) expect_matches_pyarrow(std::string("codec_") + c, "flat");
}

TEST(Parquet, PlainDictionaryV1V2AndDeltaMatchPyarrow) {
  for (const char* n : {"plain_v1", "dict_v2", "dict_fallback", "delta"}) expect_matches_pyarrow(n, "flat");
}

TEST(Parquet, NestedStructsAndListsMatchPyarrow) {
  expect_matches_pyarrow("nested_v1", "nested");
  expect_matches_pyarrow("nested_v2", "nested");
}

TEST(Parquet, HuggingFaceLayoutsMatchPyarrow) {
  expect_matches_pyarrow("rlaif", "rlaif");
  expect_matches_pyarrow("captions", "captions");
  expect_matches_pyarrow("llava", "llava");
  expect_matches_pyarrow("llava_coco", "llava_coco");    // integer ids, a null-path image struct
  expect_matches_pyarrow("llava_names", "llava_names");  // a string image column with a null
  expect_matches_pyarrow("corpus", "corpus");
  expect_matches_pyarrow("empty", "empty");
  expect_matches_pyarrow("datasets_written", "datasets_written");  // written by datasets' to_parquet
  pq::ParquetFile hf(fixture("datasets_written.parquet"));
  EXPECT_EQ(pq::image_fields(hf), std::vector<std::string>{"image"});
}

TEST(Parquet, SchemaLevelsAndMetadata) {
  pq::ParquetFile f(fixture("rlaif.parquet"));
  EXPECT_GT(f.num_row_groups(), 1);
  const int c = f.find_column("chosen.list.element.content.list.element.text");
  ASSERT_GE(c, 0);
  EXPECT_EQ(f.columns()[size_t(c)].max_rep, 2);
  // Optional: chosen, its element, content, its element, text; plus the two repeated "list" groups.
  EXPECT_EQ(f.columns()[size_t(c)].max_def, 7);
  EXPECT_TRUE(f.columns()[size_t(c)].utf8);
  ASSERT_NE(f.key_value("huggingface"), nullptr);
  EXPECT_EQ(pq::image_fields(f), std::vector<std::string>{"images"});
  pq::ParquetFile nested(fixture("nested_v1.parquet"));  // no metadata: found by shape
  EXPECT_EQ(pq::image_fields(nested), (std::vector<std::string>{"image", "images"}));
  EXPECT_NE(f.schema_text().find("images: group (list), optional"), std::string::npos) << f.schema_text();
}

TEST(Parquet, HuggingFaceAccessors) {
  pq::ParquetFile f(fixture("captions.parquet"));
  const json want = load_json(fixture("captions.json"));
  pq::FieldValues img = pq::read_field(f, 0, "image");
  pq::FieldValues sent = pq::read_field(f, 0, "sentences");
  auto im = pq::as_image(img.rows[1], "t");
  ASSERT_TRUE(im.has_value());
  EXPECT_EQ(hex(im->bytes), want["columns"]["image"][1]["bytes"]["hex"].get<std::string>());
  EXPECT_EQ(hex(im->path), want["columns"]["image"][1]["path"]["hex"].get<std::string>());
  std::vector<std::string_view> caps = pq::as_texts(sent.rows[2], "t");
  ASSERT_EQ(caps.size(), want["columns"]["sentences"][2].size());
  EXPECT_EQ(hex(caps[0]), want["columns"]["sentences"][2][0]["hex"].get<std::string>());
  EXPECT_THROW(pq::as_text(img.rows[0], "t"), Error);
}

TEST(Parquet, BadFilesNameFileAndOffset) {
  std::string e = error_of([] { pq::ParquetFile f(fixture("bad_truncated.parquet")); });
  EXPECT_NE(e.find("bad_truncated.parquet"), std::string::npos) << e;
  EXPECT_NE(e.find("no \"PAR1\" magic at byte"), std::string::npos) << e;

  e = error_of([] { pq::ParquetFile f(fixture("bad_magic.parquet")); });
  EXPECT_NE(e.find("bad_magic.parquet: no \"PAR1\" magic at byte 20164"), std::string::npos) << e;

  e = error_of([] { pq::ParquetFile f(fixture("bad_footer_len.parquet")); });
  EXPECT_NE(e.find("footer length"), std::string::npos) << e;
  EXPECT_NE(e.find("at byte 20160"), std::string::npos) << e;

  // The page's header claims one byte more than its data decompress to.
  pq::ParquetFile bad(fixture("bad_page_size.parquet"));
  e = error_of([&] { bad.read_column(0, bad.find_column("text")); });
  EXPECT_NE(e.find("bad_page_size.parquet, row group 0, column 'text', page at byte "), std::string::npos) << e;
  EXPECT_NE(e.find("SNAPPY data decompress to"), std::string::npos) << e;
  // The other columns still read.
  EXPECT_NO_THROW(bad.read_column(0, bad.find_column("cat")));
}

TEST(Parquet, MissingOrWrongTypeColumnNamesFileColumnAndOffset) {
  pq::ParquetFile f(fixture("codec_zstd.parquet"));
  std::string e = error_of([&] { pq::require_text_field(f, "nope"); });
  EXPECT_NE(e.find("codec_zstd.parquet: no column 'nope' (footer at byte "), std::string::npos) << e;
  EXPECT_NE(e.find("i32, i64, f32, f64, flag, text, cat, blob"), std::string::npos) << e;
  e = error_of([&] { pq::require_text_field(f, "i64"); });
  EXPECT_NE(e.find("codec_zstd.parquet, row group 0, column 'i64', chunk at byte "), std::string::npos) << e;
  EXPECT_NE(e.find("expected a string (BYTE_ARRAY) column, found INT64"), std::string::npos) << e;
  EXPECT_NO_THROW(pq::require_text_field(f, "text"));
  e = error_of([&] { pq::read_field(f, 0, "nope"); });
  EXPECT_NE(e.find("no field 'nope'"), std::string::npos) << e;
}

// Every prefix of a valid file and a sweep of single-byte changes: errors, never a crash (the sanitizer
// build and the fuzzer check reads outside the file).
TEST(Parquet, DamagedCopiesFailCleanly) {
  std::ifstream in(fixture("nested_v2.parquet"), std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string good = ss.str();
  const std::string path = ::testing::TempDir() + "tinyvlm_parquet_damaged.parquet";
  int errors = 0, reads = 0;
  auto try_read = [&](const std::string& bytes) {
    { std::ofstream(path, std::ios::binary) << bytes; }
    try {
      pq::ParquetFile f(path);
      for (int g = 0; g < f.num_row_groups(); ++g)
        for (int c : f.nodes()[0].children) pq::read_field(f, g, f.nodes()[size_t(c)].element->name);
      ++reads;
    } catch (const Error&) {
      ++errors;
    }
  };
  for (size_t n = 0; n < good.size(); n += 151) try_read(good.substr(0, n));
  for (size_t i = 0; i < good.size(); i += 23) {
    std::string b = good;
    b[i] = char(b[i] ^ 0x5a);
    try_read(b);
  }
  EXPECT_GT(errors, 50);
  std::remove(path.c_str());
}

TEST(Parquet, MessagesOfTheRlaifLayout) {
  pq::ParquetFile f(fixture("rlaif.parquet"));
  const json want = load_json(fixture("rlaif.json"));
  pq::FieldValues prompt = pq::read_field(f, 0, "prompt"), chosen = pq::read_field(f, 0, "chosen");
  pq::FieldValues images = pq::read_field(f, 0, "images");
  for (size_t r = 0; r < prompt.rows.size(); ++r) {
    std::vector<pq::Message> p = pq::as_messages(prompt.rows[r], "t"), c = pq::as_messages(chosen.rows[r], "t");
    ASSERT_EQ(p.size(), 1u);
    ASSERT_EQ(c.size(), 1u);
    EXPECT_EQ(p[0].role, "user");
    EXPECT_EQ(p[0].images, 1);
    EXPECT_EQ(hex(p[0].text), want["columns"]["prompt"][r][0]["content"][1]["text"]["hex"].get<std::string>());
    EXPECT_EQ(c[0].role, "assistant");
    EXPECT_EQ(hex(c[0].text), want["columns"]["chosen"][r][0]["content"][0]["text"]["hex"].get<std::string>());
    EXPECT_EQ(pq::as_images(images.rows[r], "t").size(), want["columns"]["images"][r].size());
  }
}

TEST(Parquet, MessagesOfTheLlavaLayout) {
  pq::ParquetFile f(fixture("llava.parquet"));
  const json want = load_json(fixture("llava.json"));
  EXPECT_EQ(pq::image_fields(f), std::vector<std::string>{"image"});
  size_t row = 0;
  for (int g = 0; g < f.num_row_groups(); ++g) {
    pq::FieldValues conv = pq::read_field(f, g, "conversations"), image = pq::read_field(f, g, "image");
    for (size_t r = 0; r < conv.rows.size(); ++r, ++row) {
      std::vector<pq::Message> m = pq::as_messages(conv.rows[r], "t");
      ASSERT_EQ(m.size(), want["columns"]["conversations"][row].size());
      for (size_t k = 0; k < m.size(); ++k) {
        EXPECT_EQ(hex(m[k].role), want["columns"]["conversations"][row][k]["from"]["hex"].get<std::string>());
        EXPECT_EQ(hex(m[k].text), want["columns"]["conversations"][row][k]["value"]["hex"].get<std::string>());
      }
      EXPECT_EQ(pq::as_image(image.rows[r], "t").has_value(), !want["columns"]["image"][row].is_null());
    }
  }
  EXPECT_EQ(row, 8u);
}
