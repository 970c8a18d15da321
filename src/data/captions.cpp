#include "data/captions.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>

#include "core/error.h"
#include "data/parquet_captions.h"
#include "io/parquet_source.h"
#include "core/ignore_index.h"
#include "tokenizer/bpe.h"

namespace tv {
namespace fs = std::filesystem;

namespace {

std::string resolve(const std::string& p, const std::string& base) {
  if (p.empty() || fs::path(p).is_absolute() || base.empty()) return p;
  return (fs::path(base) / p).string();
}

// Images are deduplicated by path; the index is the order of first appearance.
struct ImageTable {
  CaptionSet& set;
  std::unordered_map<std::string, int32_t> index;
  int32_t id(const std::string& path) {
    auto [it, fresh] = index.emplace(path, int32_t(set.images.size()));
    if (fresh) set.images.push_back(path);
    return it->second;
  }
};

CaptionSet load_coco(const std::string& path, const nlohmann::json& j, const std::string& images_dir) {
  CaptionSet set;
  set.source = path;
  if (!j.contains("images") || !j["images"].is_array() || !j.contains("annotations") || !j["annotations"].is_array())
    fail(path, ": a COCO captions file needs the arrays \"images\" and \"annotations\"");
  std::unordered_map<int64_t, std::string> files;
  for (size_t i = 0; i < j["images"].size(); ++i) {
    const auto& im = j["images"][i];
    if (!im.is_object() || !im.contains("id") || !im["id"].is_number_integer() || !im.contains("file_name") ||
        !im["file_name"].is_string())
      fail(path, ": images[", i, "] needs an integer \"id\" and a string \"file_name\"");
    files[im["id"].get<int64_t>()] = resolve(im["file_name"].get<std::string>(), images_dir);
  }
  ImageTable table{set, {}};
  const auto& anns = j["annotations"];
  set.samples.reserve(anns.size());
  for (size_t i = 0; i < anns.size(); ++i) {
    const auto& a = anns[i];
    if (!a.is_object() || !a.contains("image_id") || !a["image_id"].is_number_integer() || !a.contains("caption") ||
        !a["caption"].is_string())
      fail(path, ": annotations[", i, "] needs an integer \"image_id\" and a string \"caption\"");
    auto it = files.find(a["image_id"].get<int64_t>());
    if (it == files.end()) fail(path, ": annotations[", i, "] refers to image_id ", a["image_id"].get<int64_t>(), ", which is not in \"images\"");
    set.samples.push_back({table.id(it->second), a["caption"].get<std::string>()});
  }
  return set;
}

CaptionSet load_jsonl(const std::string& path, const std::string& images_dir) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, ": cannot open the captions file");
  CaptionSet set;
  set.source = path;
  ImageTable table{set, {}};
  const std::string base = images_dir.empty() ? fs::path(path).parent_path().string() : images_dir;
  std::string line;
  for (int64_t lineno = 1; std::getline(in, line); ++lineno) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail(path, ":", lineno, ": invalid JSON: ", e.what());
    }
    if (!j.is_object() || !j.contains("image") || !j["image"].is_string())
      fail(path, ":", lineno, ": expected an object with a string \"image\" and a \"caption\"");
    int32_t image = table.id(resolve(j["image"].get<std::string>(), base));
    const auto* cap = j.contains("caption") ? &j["caption"] : j.contains("captions") ? &j["captions"] : nullptr;
    if (cap && cap->is_string()) {
      set.samples.push_back({image, cap->get<std::string>()});
    } else if (cap && cap->is_array()) {
      for (const auto& c : *cap) {
        if (!c.is_string()) fail(path, ":", lineno, ": \"caption\" lists must hold strings");
        set.samples.push_back({image, c.get<std::string>()});
      }
    } else {
      fail(path, ":", lineno, ": expected \"caption\" to be a string or a list of strings");
    }
  }
  return set;
}

}  // namespace

CaptionSet load_captions(const std::string& path, const std::string& images_dir, const std::string& image_column,
                         const std::string& caption_column) {
  if (is_parquet_input(path)) return load_parquet_captions(parquet_files(path), {image_column, caption_column, images_dir});
  if (!fs::is_regular_file(path)) fail(path, ": the captions file does not exist");
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  if (ext == ".jsonl") return load_jsonl(path, images_dir);
  // A whole-file JSON object with "annotations" is COCO; anything else is read as JSONL.
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, false);
  if (!j.is_discarded() && j.is_object() && j.contains("annotations")) return load_coco(path, j, images_dir);
  if (!j.is_discarded() && j.is_object() && !j.contains("image"))
    fail(path, ": neither COCO captions (no \"annotations\") nor JSONL {\"image\", \"caption\"} records");
  return load_jsonl(path, images_dir);
}

void split_by_image(const CaptionSet& all, double fraction, CaptionSet& train, CaptionSet& val) {
  const int64_t n = int64_t(all.images.size());
  int64_t n_val = int64_t(double(n) * fraction);
  if (fraction > 0 && n >= 2 && n_val == 0) n_val = 1;
  n_val = std::min(n_val, n > 1 ? n - 1 : 0);
  const int32_t first_val = int32_t(n - n_val);
  train = CaptionSet{};
  val = CaptionSet{};
  train.source = val.source = all.source;
  train.images.assign(all.images.begin(), all.images.begin() + first_val);
  val.images.assign(all.images.begin() + first_val, all.images.end());
  for (const auto& s : all.samples) {
    if (s.image < first_val)
      train.samples.push_back(s);
    else
      val.samples.push_back({s.image - first_val, s.caption});
  }
}

CaptionFormat caption_format(const tok::Tokenizer& tokenizer, int64_t vocab_size, int64_t max_seq_len,
                             const std::string& name) {
  CaptionFormat f;
  if (max_seq_len < 2) fail("vlm_max_seq_len must be at least 2 (<image> and EOS), got ", max_seq_len);
  f.max_seq_len = max_seq_len;
  f.image_id = int32_t(vocab_size);
  const int32_t img = tokenizer.token_to_id("<image>");
  if (img >= 0 && img != vocab_size)
    fail(name, ": <image> has id ", img, " but the model puts it right after the text vocabulary, at vocab_size = ",
         vocab_size);
  f.tokenizer_has_image = img >= 0;
  // Every other id must fit the text vocabulary.
  const int32_t bound = tokenizer.id_bound();
  if (bound > vocab_size + (f.tokenizer_has_image ? 1 : 0))
    fail(name, ": the tokenizer has ids up to ", bound - 1, " but vocab_size = ", vocab_size);
  f.eos_id = tokenizer.token_to_id("</s>");
  if (f.eos_id < 0) fail(name, ": the tokenizer has no </s> (end of sequence) token");
  int32_t pad = tokenizer.token_to_id("<pad>");
  f.pad_id = pad > 0 ? pad : 0;  // the original: token_to_id("<pad>") or 0
  return f;
}

std::vector<int32_t> format_caption(const tok::Tokenizer& tokenizer, const std::string& caption, const CaptionFormat& f) {
  std::vector<int32_t> ids;
  if (f.tokenizer_has_image) {
    ids = tokenizer.encode("<image> " + caption);
  } else {
    ids.push_back(f.image_id);
    tokenizer.encode_into(" " + caption, ids);
  }
  if (int64_t(ids.size()) > f.max_seq_len - 1) ids.resize(size_t(f.max_seq_len - 1));
  ids.push_back(f.eos_id);
  return ids;
}

CaptionTokens tokenize_captions(const tok::Tokenizer& tokenizer, const CaptionSet& set, const CaptionFormat& f,
                                int threads) {
  std::vector<std::string> texts;
  texts.reserve(set.samples.size());
  for (const auto& s : set.samples) texts.push_back((f.tokenizer_has_image ? "<image> " : " ") + s.caption);
  std::vector<std::string_view> views(texts.begin(), texts.end());
  auto enc = tokenizer.encode_batch(views, threads);
  CaptionTokens out;
  out.offsets.reserve(enc.size() + 1);
  out.offsets.push_back(0);
  for (auto& e : enc) {
    if (!f.tokenizer_has_image) e.insert(e.begin(), f.image_id);
    if (int64_t(e.size()) > f.max_seq_len - 1) e.resize(size_t(f.max_seq_len - 1));
    e.push_back(f.eos_id);
    out.ids.insert(out.ids.end(), e.begin(), e.end());
    out.offsets.push_back(int64_t(out.ids.size()));
  }
  return out;
}

void caption_batch(const CaptionTokens& tok, const std::vector<int64_t>& rows, const CaptionFormat& f,
                   std::vector<int32_t>& ids, std::vector<int32_t>& labels) {
  const int64_t S = f.max_seq_len;
  ids.assign(rows.size() * size_t(S), f.pad_id);
  labels.assign(ids.size(), kIgnoreIndex);
  for (size_t i = 0; i < rows.size(); ++i) {
    const int64_t r = rows[i];
    TV_CHECK(r >= 0 && r < tok.rows(), "caption row ", r, " out of range");
    const int64_t a = tok.offsets[size_t(r)], n = tok.offsets[size_t(r) + 1] - a;
    std::copy(tok.ids.begin() + a, tok.ids.begin() + a + n, ids.begin() + int64_t(i) * S);
  }
  // The original masks by value: labels = ids, then every pad id -> ignored.
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] != f.pad_id && i % size_t(S) != 0) labels[i] = ids[i];
}

}  // namespace tv
