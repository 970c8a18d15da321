#include "data/dpo_data.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/ignore_index.h"
#include "core/rng.h"
#include "data/parquet_captions.h"
#include "io/parquet_source.h"
#include "tokenizer/bpe.h"

namespace tv {
namespace fs = std::filesystem;
using nlohmann::json;

bool decode_base64_lenient(std::string_view in, std::string& out) {
  out.clear();
  out.reserve(in.size() / 4 * 3);
  uint32_t acc = 0;
  int bits = 0;
  size_t pad = 0;
  for (char ch : in) {
    const unsigned char c = static_cast<unsigned char>(ch);
    int v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '+') v = 62;
    else if (c == '/') v = 63;
    else if (c == '=') { ++pad; continue; }
    else if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    else return false;
    if (pad) return false;  // data after padding
    acc = (acc << 6) | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(char((acc >> bits) & 0xff));
    }
  }
  return pad <= 2 && bits < 6;  // a lone 6-bit group cannot end a valid encoding
}

namespace {

const json* member(const json& j, const char* key) {
  auto it = j.find(key);
  return it == j.end() ? nullptr : &*it;
}

// The text of message list `field` as the original reads it: messages[0].content, then either the first
// part (answers: content[0].text) or the first part of type "text" (the question). Content may be a string.
std::string message_text(const json& row, const char* field, bool first_text_part, const std::string& where) {
  const json* m = member(row, field);
  if (!m) fail(where, ": missing \"", field, "\"");
  if (m->is_string()) return m->get<std::string>();
  if (!m->is_array() || m->empty() || !(*m)[0].is_object())
    fail(where, ": \"", field, "\" should be a string or a list of messages {role, content}");
  const json* content = member((*m)[0], "content");
  if (!content) fail(where, ": ", field, "[0] has no \"content\"");
  if (content->is_string()) return content->get<std::string>();
  if (!content->is_array()) fail(where, ": ", field, "[0].content should be a string or a list of {type, text}");
  for (const json& part : *content) {
    if (!part.is_object()) fail(where, ": ", field, "[0].content holds a part that is not an object");
    const json* type = member(part, "type");
    const json* text = member(part, "text");
    if (first_text_part && !(type && type->is_string() && type->get<std::string>() == "text")) continue;
    if (!text || !text->is_string()) fail(where, ": ", field, "[0].content's first ", first_text_part ? "text " : "", "part has no string \"text\"");
    return text->get<std::string>();
  }
  fail(where, ": ", field, "[0].content has no ", first_text_part ? "text part" : "part");
}

// An image value: a path, a data URL, or {bytes: base64 | null, path: string | null}.
void read_image(const json& v, DpoRecord& rec, const std::string& where) {
  auto from_string = [&](const std::string& s) {
    if (s.rfind("data:", 0) == 0) {
      const size_t comma = s.find(',');
      if (comma == std::string::npos || comma < 7 || s.compare(comma - 7, 7, ";base64") != 0) {
        rec.image_error = "the image data URL is not base64 (data:image/...;base64,...)";
        return;
      }
      if (!decode_base64_lenient(std::string_view(s).substr(comma + 1), rec.image_bytes) || rec.image_bytes.empty())
        rec.image_error = "invalid base64 in the image data URL";
      return;
    }
    rec.image_path = s;
  };
  if (v.is_null()) return;
  if (v.is_string()) return from_string(v.get<std::string>());
  if (!v.is_object()) fail(where, ": an image should be a path, a data URL or {\"bytes\", \"path\"}");
  const json* bytes = member(v, "bytes");
  const json* path = member(v, "path");
  if (bytes && bytes->is_string()) {
    if (!decode_base64_lenient(bytes->get<std::string>(), rec.image_bytes) || rec.image_bytes.empty())
      rec.image_error = "invalid base64 in the image's \"bytes\"";
    return;
  }
  if (bytes && !bytes->is_null()) fail(where, ": an image's \"bytes\" should be a base64 string or null");
  if (path && path->is_string()) return from_string(path->get<std::string>());
  if (path && !path->is_null()) fail(where, ": an image's \"path\" should be a string or null");
}

}  // namespace

DpoRecord parse_dpo_json_line(std::string_view line, const std::string& where, const std::string& fallback_id) {
  json row;
  try {
    row = json::parse(line);
  } catch (const json::exception& e) {
    fail(where, ": invalid JSON: ", e.what());
  }
  if (!row.is_object()) fail(where, ": expected an object (rlaif-v: prompt, chosen, rejected, images; or image, question, chosen, rejected)");
  DpoRecord rec;
  DpoPair& p = rec.pair;
  const json* id = member(row, "id");
  if (id && id->is_string()) p.id = id->get<std::string>();
  else if (id && id->is_number_integer()) p.id = std::to_string(id->get<int64_t>());
  else p.id = fallback_id;
  const std::string at = where + " (id " + p.id + ")";
  if (member(row, "prompt")) {
    p.question = message_text(row, "prompt", true, at);
  } else {
    const json* q = member(row, "question");
    if (!q || !q->is_string()) fail(at, ": expected \"prompt\" (a message list) or \"question\" (a string)");
    p.question = q->get<std::string>();
  }
  p.chosen = message_text(row, "chosen", false, at);
  p.rejected = message_text(row, "rejected", false, at);
  if (const json* ims = member(row, "images")) {
    if (ims->is_array()) {
      if (!ims->empty()) read_image((*ims)[0], rec, at);
    } else {
      read_image(*ims, rec, at);
    }
  } else if (const json* im = member(row, "image")) {
    read_image(*im, rec, at);
  }
  return rec;
}

namespace {

// Where a named image is: as given (absolute or relative to the working folder only when images_dir is
// empty), under images_dir, beside the data file, then by file name as the phase-3 loader looks it up.
std::string resolve_image(const std::string& name, const std::string& images_dir, const std::string& data_dir) {
  std::error_code ec;
  const fs::path p(name);
  if (p.is_absolute()) return fs::exists(p, ec) ? name : "";
  if (!images_dir.empty() && fs::exists(fs::path(images_dir) / p, ec)) return (fs::path(images_dir) / p).string();
  if (fs::exists(fs::path(data_dir) / p, ec)) return (fs::path(data_dir) / p).string();
  if (images_dir.empty() && fs::exists(p, ec)) return name;
  return find_instruct_image(images_dir.empty() ? data_dir : images_dir, name);
}

std::string extract_dir_for(const std::string& images_dir, const std::string& data_path) {
  const std::string dir = images_dir.empty() ? (fs::path(data_path).parent_path() / "tinyvlm_images").string() : images_dir;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!fs::is_directory(dir)) fail(dir, ": cannot create the folder for the images inside ", data_path, " (choose one with --images)");
  return dir;
}

void add_record(DpoSet& set, DpoRecord rec, const std::string& images_dir, const std::string& data_path,
                std::string& extract_dir) {
  ++set.records;
  DpoPair& p = rec.pair;
  if (!rec.image_error.empty()) {
    set.skipped.push_back({p.id, "corrupt image: " + rec.image_error});
    return;
  }
  if (!rec.image_bytes.empty()) {
    if (extract_dir.empty()) extract_dir = extract_dir_for(images_dir, data_path);
    p.image = extract_parquet_image(extract_dir, rec.image_bytes);
  } else if (!rec.image_path.empty()) {
    p.image = resolve_image(rec.image_path, images_dir, fs::path(data_path).parent_path().string());
    if (p.image.empty()) {
      set.skipped.push_back({p.id, "image not found: " + rec.image_path});
      return;
    }
  } else {
    set.skipped.push_back({p.id, "no image"});
    return;
  }
  set.pairs.push_back(std::move(p));
}

// Parquet message list -> the text the original reads (see message_text).
std::string parquet_message_text(const pq::Value& v, bool first_text_part, const std::string& where) {
  if (v.kind == pq::Value::Bytes) return std::string(*pq::as_text(v, where));
  if (v.kind != pq::Value::List || v.items.empty() || v.items[0].kind != pq::Value::Struct)
    fail(where, ": expected a list of messages {role, content}");
  const pq::Value* content = v.items[0].field("content");
  if (!content || content->is_null()) fail(where, ": the first message has no content");
  if (content->kind == pq::Value::Bytes) return std::string(*pq::as_text(*content, where));
  if (content->kind != pq::Value::List) fail(where, ": content should be a string or a list of {type, text}");
  for (const pq::Value& part : content->items) {
    const pq::Value* type = part.field("type");
    const pq::Value* text = part.field("text");
    if (first_text_part) {
      auto t = type ? pq::as_text(*type, where) : std::nullopt;
      if (!t || *t != "text") continue;
    }
    auto s = text ? pq::as_text(*text, where) : std::nullopt;
    if (!s) fail(where, ": the first ", first_text_part ? "text " : "", "part has no text");
    return std::string(*s);
  }
  fail(where, ": the first message has no ", first_text_part ? "text part" : "part");
}

void load_parquet_dpo(DpoSet& set, const std::vector<std::string>& files, const std::string& images_dir) {
  std::string image_field = "images";
  {
    const pq::ParquetFile first(files[0]);
    if (first.find_field("images") < 0 && first.find_field("image") >= 0) image_field = "image";
  }
  ParquetRowReader rows(files, {"prompt", "chosen", "rejected", image_field});
  std::string extract_dir, file_path, file_name;
  int64_t index = -1;
  while (rows.next_group()) {
    if (rows.file().path() != file_path) {
      file_path = rows.file().path();
      file_name = fs::path(file_path).filename().string();
      index = -1;
    }
    for (size_t r = 0; r < rows.rows(); ++r) {
      ++index;
      const std::string where = rows.where(r);
      DpoRecord rec;
      DpoPair& p = rec.pair;
      p.id = file_name + ":" + std::to_string(index);
      p.question = parquet_message_text(rows.value(0, r), true, where + ", column 'prompt'");
      p.chosen = parquet_message_text(rows.value(1, r), false, where + ", column 'chosen'");
      p.rejected = parquet_message_text(rows.value(2, r), false, where + ", column 'rejected'");
      const pq::Value& im = rows.value(3, r);
      const std::string at = where + ", column '" + image_field + "'";
      if (im.kind == pq::Value::Bytes) {
        rec.image_path = std::string(*pq::as_text(im, at));
      } else {
        const std::vector<pq::ImageRef> ims = pq::as_images(im, at);
        if (!ims.empty()) {
          rec.image_bytes = std::string(ims[0].bytes);
          if (rec.image_bytes.empty()) rec.image_path = std::string(ims[0].path);
        }
      }
      if (!rec.image_bytes.empty() && extract_dir.empty()) extract_dir = extract_dir_for(images_dir, files[0]);
      add_record(set, std::move(rec), images_dir, files[0], extract_dir);
    }
  }
}

}  // namespace

DpoSet load_dpo(const std::string& path, const std::string& images_dir) {
  DpoSet set;
  set.source = path;
  if (is_parquet_input(path)) {
    load_parquet_dpo(set, parquet_files(path), images_dir);
    return set;
  }
  if (!fs::is_regular_file(path)) fail(path, ": the preference data file does not exist");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, ": cannot open the preference data file");
  const std::string name = fs::path(path).filename().string();
  std::string line, extract_dir;
  for (int64_t lineno = 1; std::getline(in, line); ++lineno) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    if (lineno == 1 && line.find_first_not_of(" \t") != std::string::npos && line[line.find_first_not_of(" \t")] == '[')
      fail(path, ":1: a JSON array; preference data is JSONL (one pair per line) or Parquet");
    add_record(set, parse_dpo_json_line(line, path + ":" + std::to_string(lineno), name + ":" + std::to_string(lineno)),
               images_dir, path, extract_dir);
  }
  return set;
}

void split_dpo(const DpoSet& all, double fraction, uint64_t seed, DpoSet& train, DpoSet& val) {
  const int64_t n = int64_t(all.pairs.size());
  int64_t n_val = int64_t(double(n) * fraction);
  if (fraction > 0 && n >= 2 && n_val == 0) n_val = 1;
  n_val = std::min(n_val, n > 1 ? n - 1 : 0);
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[size_t(i)] = i;
  Rng rng(seed);
  for (int64_t i = n - 1; i > 0; --i) std::swap(order[size_t(i)], order[rng.below(uint64_t(i + 1))]);
  std::vector<bool> is_val(size_t(n), false);
  for (int64_t i = 0; i < n_val; ++i) is_val[size_t(order[size_t(i)])] = true;
  train = DpoSet{};
  val = DpoSet{};
  train.source = val.source = all.source;
  train.records = all.records;
  train.skipped = all.skipped;
  for (int64_t i = 0; i < n; ++i) (is_val[size_t(i)] ? val : train).pairs.push_back(all.pairs[size_t(i)]);
}

DpoTokens tokenize_dpo(const tok::Tokenizer& tokenizer, const DpoSet& set, const ConversationFormat& f,
                       std::vector<SkippedSample>& skipped, int threads) {
  if (f.max_seq_len < 3) fail("dpo_max_seq_len must be at least 3 (<image>, one response token and EOS), got ", f.max_seq_len);
  std::vector<std::string> texts;
  texts.reserve(set.pairs.size() * 3);
  for (const DpoPair& p : set.pairs) {
    texts.push_back(" USER: " + p.question + " ASSISTANT:");
    texts.push_back(" " + p.chosen);
    texts.push_back(" " + p.rejected);
  }
  std::vector<std::string_view> views(texts.begin(), texts.end());
  const auto enc = tokenizer.encode_batch(views, threads);
  DpoTokens out;
  InstructTokens& t = out.rows;
  t.offsets.push_back(0);
  const size_t keep = size_t(f.max_seq_len - 1);  // room for the EOS, as the original cuts
  for (size_t i = 0; i < set.pairs.size(); ++i) {
    const std::vector<int32_t>& prompt = enc[3 * i];
    const size_t prompt_len = 1 + prompt.size();
    bool cut = false, empty = false;
    for (int k = 1; k <= 2; ++k) {
      const size_t resp = enc[3 * i + size_t(k)].size();
      cut |= prompt_len + resp > keep;
      empty |= prompt_len >= keep || resp == 0;
    }
    if (empty) {
      skipped.push_back({set.pairs[i].id, "empty response after truncation to dpo_max_seq_len"});
      continue;
    }
    out.rows.truncated += cut;
    for (int k = 1; k <= 2; ++k) {
      const std::vector<int32_t>& resp = enc[3 * i + size_t(k)];
      const size_t n_resp = std::min(resp.size(), keep - prompt_len);
      t.ids.push_back(f.image_id);
      t.labels.push_back(kIgnoreIndex);
      t.ids.insert(t.ids.end(), prompt.begin(), prompt.end());
      t.labels.insert(t.labels.end(), prompt.size(), kIgnoreIndex);
      t.ids.insert(t.ids.end(), resp.begin(), resp.begin() + int64_t(n_resp));
      t.labels.insert(t.labels.end(), resp.begin(), resp.begin() + int64_t(n_resp));
      t.ids.push_back(f.eos_id);
      t.labels.push_back(f.eos_id);
      t.offsets.push_back(int64_t(t.ids.size()));
      t.sample.push_back(int64_t(i));
    }
  }
  return out;
}

}  // namespace tv
