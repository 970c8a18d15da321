#include "data/instruct_data.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/ignore_index.h"
#include "core/rng.h"
#include "data/parquet_captions.h"
#include "io/parquet_source.h"
#include "tokenizer/bpe.h"

namespace tv {
namespace fs = std::filesystem;

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return s;
}

// One record, read from JSON or from a Parquet row, before the shared steps.
struct InstructRecord {
  InstructSample sample;    // id and turns
  std::string image;        // the image's name as the record gives it (the COCO filter reads it)
  std::string_view bytes;   // Parquet: the encoded image inside the row (empty when the row names a file)
};

// A record -> a sample, a skip, or a left-out non-COCO record. Images inside a Parquet row are written once
// into `extract_dir` (named by content) so that they are decoded, cached and skipped when corrupt as files are.
void add_record(InstructSet& set, InstructRecord rec, const std::string& images_dir, const std::string& extract_dir,
                const InstructLoadOptions& o) {
  ++set.records;
  InstructSample& s = rec.sample;
  const bool has_image = !rec.image.empty() || !rec.bytes.empty();
  // The original's filter, on the raw name; an embedded image without a name has none to filter on and is kept.
  if (o.coco_only && !rec.image.empty() && lower(rec.image).find("coco") == std::string::npos) {
    ++set.not_coco;
    return;
  }
  if (!has_image) {
    set.skipped.push_back({s.id, "no image"});
    return;
  }
  if (s.turns.empty()) {
    set.skipped.push_back({s.id, "no turns"});
    return;
  }
  s.image = !rec.bytes.empty() ? extract_parquet_image(extract_dir, rec.bytes) : find_instruct_image(images_dir, rec.image);
  if (s.image.empty()) {
    set.skipped.push_back({s.id, "image not found: " + rec.image});
    return;
  }
  set.samples.push_back(std::move(s));
}

InstructRecord json_record(const nlohmann::json& r, const std::string& where, const std::string& fallback_id) {
  if (!r.is_object()) fail(where, ": expected an object {id, image, conversations}");
  InstructRecord rec;
  InstructSample& s = rec.sample;
  if (r.contains("id") && r["id"].is_string())
    s.id = r["id"].get<std::string>();
  else if (r.contains("id") && r["id"].is_number_integer())
    s.id = std::to_string(r["id"].get<int64_t>());
  else
    s.id = fallback_id;
  if (!r.contains("conversations") || !r["conversations"].is_array())
    fail(where, " (id ", s.id, "): expected \"conversations\": a list of {\"from\", \"value\"}");
  for (size_t k = 0; k < r["conversations"].size(); ++k) {
    const auto& t = r["conversations"][k];
    if (!t.is_object() || !t.contains("from") || !t["from"].is_string() || !t.contains("value") || !t["value"].is_string())
      fail(where, " (id ", s.id, "): conversations[", k, "] needs the strings \"from\" and \"value\"");
    s.turns.push_back({is_user_role(t["from"].get<std::string>()), t["value"].get<std::string>()});
  }
  rec.image = r.contains("image") && r["image"].is_string() ? r["image"].get<std::string>() : "";
  return rec;
}

// LLaVA rows as HuggingFace publishes them: `conversations` (a list of {from, value}), `image` (an image struct
// {bytes, path} with the bytes inside the file, or a string naming a file under images_dir) and `id` when present.
// The extracted images go into images_dir (or "tinyvlm_images" beside the first file when it is empty).
void load_parquet_instruct(InstructSet& set, const std::vector<std::string>& files, const std::string& images_dir,
                           const InstructLoadOptions& o) {
  bool has_id = false;
  {
    const pq::ParquetFile first(files[0]);
    has_id = first.find_field("id") >= 0;
  }
  const std::string dir = images_dir.empty() ? (fs::path(files[0]).parent_path() / "tinyvlm_images").string() : images_dir;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!fs::is_directory(dir)) fail(dir, ": cannot create the folder for the images inside ", files[0], " (choose one with --images)");
  std::vector<std::string> fields = {"conversations", "image"};
  if (has_id) fields.push_back("id");
  ParquetRowReader rows(files, fields);
  std::string file_path, file_name;
  int64_t index = -1;  // the row's index in its file: the fallback id "<file>:<index>"
  while (rows.next_group()) {
    if (rows.file().path() != file_path) {
      file_path = rows.file().path();
      file_name = fs::path(file_path).filename().string();
      index = -1;
    }
    for (size_t r = 0; r < rows.rows(); ++r) {
      const std::string where = rows.where(r);
      ++index;
      InstructRecord rec;
      InstructSample& s = rec.sample;
      if (has_id) {
        const pq::Value& id = rows.value(2, r);
        if (id.kind == pq::Value::Int) s.id = std::to_string(id.i);
        else if (auto t = pq::as_text(id, where + ", column 'id'")) s.id = std::string(*t);
      }
      if (s.id.empty()) s.id = file_name + ":" + std::to_string(index);
      for (const pq::Message& m : pq::as_messages(rows.value(0, r), where + " (id " + s.id + "), column 'conversations'"))
        s.turns.push_back({is_user_role(std::string(m.role)), m.text});
      const pq::Value& im = rows.value(1, r);
      const std::string at = where + " (id " + s.id + "), column 'image'";
      if (im.kind == pq::Value::Bytes) {
        rec.image = std::string(*pq::as_text(im, at));
      } else {
        const std::vector<pq::ImageRef> ims = pq::as_images(im, at);
        if (!ims.empty()) {
          rec.image = std::string(ims[0].path);
          rec.bytes = ims[0].bytes;
        }
      }
      add_record(set, std::move(rec), images_dir, dir, o);
    }
  }
}

}  // namespace

std::string find_instruct_image(const std::string& images_dir, const std::string& image) {
  const fs::path name = fs::path(image).filename();
  if (name.empty()) return "";
  const fs::path dir(images_dir.empty() ? "." : images_dir);
  for (const fs::path& p : {dir / "train" / "data" / name, dir / "validation" / "data" / name, dir / "train2017" / name,
                            dir / "val2017" / name, dir / name}) {
    std::error_code ec;
    if (fs::exists(p, ec)) return p.string();
  }
  return "";
}

InstructSet load_instruct(const std::string& path, const std::string& images_dir, const InstructLoadOptions& o) {
  if (is_parquet_input(path)) {
    InstructSet set;
    set.source = path;
    load_parquet_instruct(set, parquet_files(path), images_dir, o);
    return set;
  }
  if (!fs::is_regular_file(path)) fail(path, ": the instruction data file does not exist");
  InstructSet set;
  set.source = path;
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, ": cannot open the instruction data file");
  const bool jsonl_ext = lower(fs::path(path).extension().string()) == ".jsonl";
  char first = 0;
  while (in.get(first) && std::isspace(static_cast<unsigned char>(first))) {
  }
  in.clear();
  in.seekg(0);
  if (!jsonl_ext && first == '[') {
    std::stringstream ss;
    ss << in.rdbuf();
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(ss.str());
    } catch (const nlohmann::json::exception& e) {
      fail(path, ": invalid JSON: ", e.what());
    }
    for (size_t i = 0; i < j.size(); ++i)
      add_record(set, json_record(j[i], path + ": record " + std::to_string(i), fs::path(path).filename().string() + ":" + std::to_string(i)),
                 images_dir, "", o);
    return set;
  }
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
    add_record(set, json_record(j, path + ":" + std::to_string(lineno), fs::path(path).filename().string() + ":" + std::to_string(lineno)),
               images_dir, "", o);
  }
  return set;
}

void split_instruct(const InstructSet& all, double fraction, uint64_t seed, InstructSet& train, InstructSet& val) {
  const int64_t n = int64_t(all.samples.size());
  int64_t n_val = int64_t(double(n) * fraction);
  if (fraction > 0 && n >= 2 && n_val == 0) n_val = 1;
  n_val = std::min(n_val, n > 1 ? n - 1 : 0);
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[size_t(i)] = i;
  Rng rng(seed);
  for (int64_t i = n - 1; i > 0; --i) std::swap(order[size_t(i)], order[rng.below(uint64_t(i + 1))]);
  std::vector<bool> is_val(size_t(n), false);
  for (int64_t i = 0; i < n_val; ++i) is_val[size_t(order[size_t(i)])] = true;
  train = InstructSet{};
  val = InstructSet{};
  train.source = val.source = all.source;
  train.records = all.records;
  train.not_coco = all.not_coco;
  train.skipped = all.skipped;
  for (int64_t i = 0; i < n; ++i) (is_val[size_t(i)] ? val : train).samples.push_back(all.samples[size_t(i)]);
}

InstructTokens tokenize_instruct(const tok::Tokenizer& tokenizer, const InstructSet& set, const ConversationFormat& f,
                                 std::vector<SkippedSample>& skipped, int threads) {
  // Every turn's text, tokenized in one parallel batch, then assembled per sample.
  std::vector<std::string> texts;
  for (const auto& s : set.samples)
    for (const auto& t : s.turns) texts.push_back(turn_text(t.user, t.message));
  std::vector<std::string_view> views(texts.begin(), texts.end());
  auto enc = tokenizer.encode_batch(views, threads);
  InstructTokens out;
  out.offsets.push_back(0);
  size_t k = 0;
  for (size_t i = 0; i < set.samples.size(); ++i) {
    const InstructSample& s = set.samples[i];
    std::vector<std::vector<int32_t>> tokens(enc.begin() + int64_t(k), enc.begin() + int64_t(k + s.turns.size()));
    k += s.turns.size();
    FormattedConversation c = assemble_conversation(s.turns, tokens, f);
    if (c.labelled() == 0) {
      skipped.push_back({s.id, c.truncated ? "no assistant token within instruct_max_seq_len" : "no assistant turn"});
      continue;
    }
    out.truncated += c.truncated;
    out.ids.insert(out.ids.end(), c.ids.begin(), c.ids.end());
    out.labels.insert(out.labels.end(), c.labels.begin(), c.labels.end());
    out.offsets.push_back(int64_t(out.ids.size()));
    out.sample.push_back(int64_t(i));
  }
  return out;
}

int64_t instruct_batch(const InstructTokens& tok, const std::vector<int64_t>& rows, const ConversationFormat& f,
                       bool pad_to_max, std::vector<int32_t>& ids, std::vector<int32_t>& labels) {
  int64_t S = 1;
  for (int64_t r : rows) {
    TV_CHECK(r >= 0 && r < tok.rows(), "instruct row ", r, " out of range");
    S = std::max(S, tok.length(r));
  }
  if (pad_to_max) S = f.max_seq_len;
  ids.assign(rows.size() * size_t(S), f.pad_id);
  labels.assign(ids.size(), kIgnoreIndex);
  for (size_t i = 0; i < rows.size(); ++i) {
    const int64_t a = tok.offsets[size_t(rows[i])], n = tok.length(rows[i]);
    std::copy(tok.ids.begin() + a, tok.ids.begin() + a + n, ids.begin() + int64_t(i) * S);
    std::copy(tok.labels.begin() + a, tok.labels.begin() + a + n, labels.begin() + int64_t(i) * S);
  }
  return S;
}

std::string skipped_report(const std::vector<SkippedSample>& skipped, size_t show) {
  if (skipped.empty()) return "";
  std::map<std::string, int64_t> by_reason;
  for (const auto& s : skipped) by_reason[s.reason.substr(0, s.reason.find(':'))]++;
  std::string out = std::to_string(skipped.size()) + " samples skipped (";
  bool first = true;
  for (const auto& [reason, n] : by_reason) {
    out += (first ? "" : ", ") + std::to_string(n) + " " + reason;
    first = false;
  }
  out += ")";
  for (size_t i = 0; i < skipped.size() && i < show; ++i)
    out += (i ? ", " : ": ") + skipped[i].id + " (" + skipped[i].reason + ")";
  if (skipped.size() > show) out += ", ...";
  return out;
}

}  // namespace tv
