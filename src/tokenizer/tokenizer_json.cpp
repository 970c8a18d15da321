// tokenizer.json reading (with errors that name the offending field) and writing in the exact
// layout HuggingFace's serde_json pretty printer produces.
#include <nlohmann/json.hpp>

#include <algorithm>

#include "core/error.h"
#include "tokenizer/bpe.h"
#include "tokenizer/bpe_impl.h"
#include "tokenizer/flat_map.h"

namespace tv::tok {

using nlohmann::json;

void set_merges(Tokenizer::Impl& impl, const std::vector<std::pair<int32_t, int32_t>>& pairs) {
  const size_t prefix_len = impl.bpe.continuing_subword_prefix ? impl.bpe.continuing_subword_prefix->size() : 0;
  // Keep the last occurrence of each pair.
  U64Map<uint32_t> last(pairs.size());
  for (size_t i = 0; i < pairs.size(); ++i)
    last.get_or_insert((uint64_t(uint32_t(pairs[i].first)) << 32) | uint32_t(pairs[i].second)) = uint32_t(i);
  impl.merges.clear();
  std::vector<std::tuple<int32_t, int32_t, uint64_t>> entries;
  for (size_t i = 0; i < pairs.size(); ++i) {
    const auto [a, b] = pairs[i];
    const uint64_t key = (uint64_t(uint32_t(a)) << 32) | uint32_t(b);
    if (*last.find(key) != i) continue;
    const std::string& sa = impl.vocab[a];
    const std::string& sb = impl.vocab[b];
    const std::string merged = sa + (sb.size() >= prefix_len ? sb.substr(prefix_len) : std::string());
    auto it = impl.token_id.find(merged);
    if (it == impl.token_id.end())
      fail("model.merges[", i, "]: merged token '", merged, "' (from '", sa, "' + '", sb, "') is not in model.vocab");
    const auto rank = static_cast<uint64_t>(impl.merges.size());
    impl.merges.emplace_back(a, b);
    entries.emplace_back(a, b, (rank << 32) | uint32_t(it->second));
  }
  impl.merge_table.build(entries);
}

void MergeTable::build(const std::vector<std::tuple<int32_t, int32_t, uint64_t>>& entries) {
  size_t cap = 16;
  int bits = 4;
  while (cap < entries.size() * 2) {
    cap *= 2;
    ++bits;
  }
  slots_.assign(cap, 0);
  mask_ = cap - 1;
  shift_ = 64 - bits;
  new_ids_.assign(entries.size(), 0);
  for (const auto& [a, b, v] : entries) {
    const auto rank = static_cast<uint32_t>(v >> 32);
    if (a < 0 || b < 0 || a >= (1 << kIdBits) - 1 || b >= (1 << kIdBits) || rank >= (1u << kRankBits))
      fail("model.merges: ids or ranks beyond what the merge table holds (", (1 << kIdBits) - 1, " tokens, ",
           1u << kRankBits, " merges)");
    new_ids_[rank] = static_cast<int32_t>(v & 0xFFFFFFFFu);
    const uint64_t key = pack(a, b);
    size_t i = (key * 0x9E3779B97F4A7C15ull) >> shift_;
    while (slots_[i] != 0) i = (i + 1) & mask_;
    slots_[i] = (key << kRankBits) | rank;
  }
}

namespace {

// ------------------------------------------------------------------ reading

struct Reader {
  std::string source;

  [[noreturn]] void error(const std::string& field, const std::string& what) const {
    fail(source, ": field '", field, "': ", what);
  }
  static const char* type_name(const json& v) { return v.type_name(); }

  const json* opt(const json& obj, const char* key) const {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return nullptr;
    return &*it;
  }
  bool get_bool(const json& obj, const char* key, const std::string& path, bool dflt) const {
    const json* v = opt(obj, key);
    if (!v) return dflt;
    if (!v->is_boolean()) error(path + "." + key, std::string("expected true or false, got ") + type_name(*v));
    return v->get<bool>();
  }
  std::optional<std::string> get_opt_string(const json& obj, const char* key, const std::string& path) const {
    const json* v = opt(obj, key);
    if (!v) return std::nullopt;
    if (!v->is_string()) error(path + "." + key, std::string("expected a string or null, got ") + type_name(*v));
    return v->get<std::string>();
  }
  std::string get_type(const json& obj, const std::string& path) const {
    if (!obj.is_object()) error(path, std::string("expected an object or null, got ") + type_name(obj));
    const json* t = opt(obj, "type");
    if (!t || !t->is_string()) error(path + ".type", "missing or not a string");
    return t->get<std::string>();
  }
};

void read_model(const Reader& r, const json& m, Tokenizer::Impl& impl) {
  if (!m.is_object()) r.error("model", std::string("expected an object, got ") + m.type_name());
  if (const json* t = r.opt(m, "type")) {
    if (!t->is_string() || t->get<std::string>() != "BPE")
      r.error("model.type", "only \"BPE\" is supported, got " + t->dump());
  }
  if (const json* d = r.opt(m, "dropout")) {
    if (!d->is_number()) r.error("model.dropout", "expected a number or null");
    if (d->get<double>() != 0.0) r.error("model.dropout", "BPE dropout is not supported (encoding would be random)");
  }
  impl.bpe.unk_token = r.get_opt_string(m, "unk_token", "model");
  impl.bpe.continuing_subword_prefix = r.get_opt_string(m, "continuing_subword_prefix", "model");
  impl.bpe.end_of_word_suffix = r.get_opt_string(m, "end_of_word_suffix", "model");
  impl.bpe.fuse_unk = r.get_bool(m, "fuse_unk", "model", false);
  impl.bpe.byte_fallback = r.get_bool(m, "byte_fallback", "model", false);
  impl.bpe.ignore_merges = r.get_bool(m, "ignore_merges", "model", false);

  const json* vocab = r.opt(m, "vocab");
  if (!vocab) r.error("model.vocab", "missing");
  if (!vocab->is_object()) r.error("model.vocab", std::string("expected an object of token: id, got ") + vocab->type_name());
  int64_t max_id = -1;
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 || it.value().get<int64_t>() > INT32_MAX)
      r.error("model.vocab", "value of \"" + it.key() + "\" must be a non-negative 32-bit integer, got " + it.value().dump());
    max_id = std::max(max_id, it.value().get<int64_t>());
  }
  impl.vocab.assign(size_t(max_id + 1), std::string());
  impl.present.assign(size_t(max_id + 1), 0);
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    const auto id = static_cast<int32_t>(it.value().get<int64_t>());
    // Two tokens with one id: the reverse map keeps one of them, as HuggingFace's does.
    impl.vocab[id] = it.key();
    impl.present[id] = 1;
    impl.token_id[it.key()] = id;
  }
  impl.model_size = vocab->size();

  const json* merges = r.opt(m, "merges");
  if (!merges) r.error("model.merges", "missing");
  if (!merges->is_array()) r.error("model.merges", std::string("expected an array, got ") + merges->type_name());
  std::vector<std::pair<int32_t, int32_t>> pairs;
  pairs.reserve(merges->size());
  auto lookup = [&](const std::string& tok, size_t i) {
    auto it = impl.token_id.find(tok);
    if (it == impl.token_id.end())
      r.error("model.merges[" + std::to_string(i) + "]", "token '" + tok + "' is not in model.vocab");
    return it->second;
  };
  size_t i = 0;
  for (const json& e : *merges) {
    if (e.is_string()) {
      // Legacy "a b" form; "#version" lines are comments.
      const std::string s = e.get<std::string>();
      if (s.rfind("#version", 0) == 0) {
        ++i;
        continue;
      }
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        r.error("model.merges[" + std::to_string(i) + "]", "expected \"left right\" with exactly one space, got \"" + s + "\"");
      pairs.emplace_back(lookup(s.substr(0, sp), i), lookup(s.substr(sp + 1), i));
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      pairs.emplace_back(lookup(e[0].get<std::string>(), i), lookup(e[1].get<std::string>(), i));
    } else {
      r.error("model.merges[" + std::to_string(i) + "]", "expected \"left right\" or [\"left\", \"right\"], got " + e.dump());
    }
    ++i;
  }
  set_merges(impl, pairs);
}

void read_byte_level(const Reader& r, const json& v, const std::string& path, bool& aps, bool& trim, bool& regex) {
  aps = r.get_bool(v, "add_prefix_space", path, true);
  trim = r.get_bool(v, "trim_offsets", path, true);
  regex = r.get_bool(v, "use_regex", path, true);
}

void read_template(const Reader& r, const json& v, PostProcessor& post) {
  auto read_pieces = [&](const char* key, std::vector<TemplatePiece>& out) {
    const json* arr = r.opt(v, key);
    if (!arr) return;
    const std::string path = std::string("post_processor.") + key;
    if (!arr->is_array()) r.error(path, "expected an array");
    for (size_t i = 0; i < arr->size(); ++i) {
      const json& p = (*arr)[i];
      const std::string pp = path + "[" + std::to_string(i) + "]";
      TemplatePiece piece;
      if (p.is_object() && p.contains("Sequence") && p["Sequence"].is_object()) {
        piece.is_sequence = true;
        const json& s = p["Sequence"];
        if (!s.contains("id") || !s["id"].is_string()) r.error(pp + ".Sequence.id", "expected \"A\" or \"B\"");
        piece.seq_id = s["id"].get<std::string>();
        piece.type_id = s.value("type_id", 0u);
      } else if (p.is_object() && p.contains("SpecialToken") && p["SpecialToken"].is_object()) {
        const json& s = p["SpecialToken"];
        if (!s.contains("id") || !s["id"].is_string()) r.error(pp + ".SpecialToken.id", "expected a string");
        piece.special_key = s["id"].get<std::string>();
        piece.type_id = s.value("type_id", 0u);
      } else {
        r.error(pp, "expected {\"Sequence\": ...} or {\"SpecialToken\": ...}");
      }
      out.push_back(std::move(piece));
    }
  };
  read_pieces("single", post.single);
  read_pieces("pair", post.pair);
  if (const json* sp = r.opt(v, "special_tokens")) {
    if (!sp->is_object()) r.error("post_processor.special_tokens", "expected an object");
    for (auto it = sp->begin(); it != sp->end(); ++it) {
      const std::string path = "post_processor.special_tokens." + it.key();
      TemplateSpecial s;
      s.key = it.key();
      const json& o = it.value();
      if (!o.is_object() || !o.contains("ids") || !o["ids"].is_array()) r.error(path + ".ids", "expected an array of ids");
      for (const json& id : o["ids"]) {
        if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX)
          r.error(path + ".ids", "expected integers in [0, 2^31)");
        s.ids.push_back(int32_t(id.get<int64_t>()));
      }
      if (o.contains("tokens") && o["tokens"].is_array())
        for (const json& t : o["tokens"]) s.tokens.push_back(t.is_string() ? t.get<std::string>() : std::string());
      post.specials.push_back(std::move(s));
    }
  }
  for (const TemplatePiece& p : post.single)
    if (!p.is_sequence) {
      bool found = false;
      for (const TemplateSpecial& s : post.specials) found = found || s.key == p.special_key;
      if (!found) r.error("post_processor.single", "special token '" + p.special_key + "' is missing from special_tokens");
    }
}

// ------------------------------------------------------------------ writing (serde_json pretty)

class Out {
 public:
  std::string s;

  void str(std::string_view v) {
    s.push_back('"');
    for (unsigned char c : v) {
      switch (c) {
        case '"': s += "\\\""; break;
        case '\\': s += "\\\\"; break;
        case '\b': s += "\\b"; break;
        case '\f': s += "\\f"; break;
        case '\n': s += "\\n"; break;
        case '\r': s += "\\r"; break;
        case '\t': s += "\\t"; break;
        default:
          if (c < 0x20) {
            static const char* hex = "0123456789abcdef";
            s += "\\u00";
            s.push_back(hex[c >> 4]);
            s.push_back(hex[c & 15]);
          } else {
            s.push_back(static_cast<char>(c));
          }
      }
    }
    s.push_back('"');
  }
  void indent() { s.append(size_t(depth_) * 2, ' '); }

  // Objects and arrays: begin, then for each member key()/item(), then end().
  void begin(char open) {
    s.push_back(open);
    ++depth_;
    first_.push_back(true);
  }
  void end(char close) {
    --depth_;
    const bool empty = first_.back();
    first_.pop_back();
    if (!empty) {
      s.push_back('\n');
      indent();
    }
    s.push_back(close);
  }
  void item() {
    if (!first_.back()) s.push_back(',');
    first_.back() = false;
    s.push_back('\n');
    indent();
  }
  void key(std::string_view k) {
    item();
    str(k);
    s += ": ";
  }
  void null() { s += "null"; }
  void boolean(bool b) { s += b ? "true" : "false"; }
  void number(int64_t v) { s += std::to_string(v); }
  void opt_str(const std::optional<std::string>& v) {
    if (v) str(*v);
    else null();
  }

  // Generic value (keys in sorted order, which is serde's order for the structures written so).
  void value(const json& v) {
    switch (v.type()) {
      case json::value_t::null: null(); break;
      case json::value_t::boolean: boolean(v.get<bool>()); break;
      case json::value_t::number_integer: number(v.get<int64_t>()); break;
      case json::value_t::number_unsigned: s += std::to_string(v.get<uint64_t>()); break;
      case json::value_t::number_float: s += v.dump(); break;
      case json::value_t::string: str(v.get_ref<const std::string&>()); break;
      case json::value_t::array:
        begin('[');
        for (const json& e : v) {
          item();
          value(e);
        }
        end(']');
        break;
      case json::value_t::object:
        begin('{');
        for (auto it = v.begin(); it != v.end(); ++it) {
          key(it.key());
          value(it.value());
        }
        end('}');
        break;
      default: null(); break;
    }
  }

 private:
  int depth_ = 0;
  std::vector<bool> first_;
};

void write_byte_level(Out& o, bool aps, bool trim, bool regex) {
  o.begin('{');
  o.key("type");
  o.str("ByteLevel");
  o.key("add_prefix_space");
  o.boolean(aps);
  o.key("trim_offsets");
  o.boolean(trim);
  o.key("use_regex");
  o.boolean(regex);
  o.end('}');
}

void write_template(Out& o, const PostProcessor& p) {
  auto pieces = [&](const std::vector<TemplatePiece>& v) {
    o.begin('[');
    for (const TemplatePiece& t : v) {
      o.item();
      o.begin('{');
      o.key(t.is_sequence ? "Sequence" : "SpecialToken");
      o.begin('{');
      o.key("id");
      o.str(t.is_sequence ? t.seq_id : t.special_key);
      o.key("type_id");
      o.number(t.type_id);
      o.end('}');
      o.end('}');
    }
    o.end(']');
  };
  o.begin('{');
  o.key("type");
  o.str("TemplateProcessing");
  o.key("single");
  pieces(p.single);
  o.key("pair");
  pieces(p.pair);
  o.key("special_tokens");
  o.begin('{');
  std::vector<const TemplateSpecial*> sorted;
  for (const TemplateSpecial& s : p.specials) sorted.push_back(&s);
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->key < b->key; });
  for (const TemplateSpecial* s : sorted) {
    o.key(s->key);
    o.begin('{');
    o.key("id");
    o.str(s->key);
    o.key("ids");
    o.begin('[');
    for (int32_t id : s->ids) {
      o.item();
      o.number(id);
    }
    o.end(']');
    o.key("tokens");
    o.begin('[');
    for (const std::string& t : s->tokens) {
      o.item();
      o.str(t);
    }
    o.end(']');
    o.end('}');
  }
  o.end('}');
  o.end('}');
}

}  // namespace

namespace {
// The JSON library's message without its "[json.exception.kind.N] " tag.
std::string plain_json_message(const std::exception& e) {
  std::string m = e.what();
  if (m.rfind("[json.exception.", 0) == 0) {
    size_t close = m.find("] ");
    if (close != std::string::npos) m = m.substr(close + 2);
  }
  return m;
}
}  // namespace

Tokenizer Tokenizer::from_json(std::string_view text, const std::string& source) {
  auto read = [&]() -> Tokenizer {
    Reader r{source};
    json j;
    try {
      j = json::parse(text.begin(), text.end());
    } catch (const json::parse_error& e) {
      fail(source, ": not valid JSON (byte ", e.byte, "): ", plain_json_message(e));
    } catch (const json::exception& e) {  // a number too large for a double or int64
      fail(source, ": not a valid tokenizer file: ", plain_json_message(e));
    }
    if (!j.is_object()) fail(source, ": expected a JSON object at the top level");
    auto impl = std::make_unique<Impl>();
    if (const json* v = r.opt(j, "version")) {
      if (!v->is_string() || v->get<std::string>() != "1.0") r.error("version", "expected \"1.0\", got " + v->dump());
    }
    if (r.opt(j, "truncation")) r.error("truncation", "only null is supported (tinyvlm never truncates or pads)");
    if (r.opt(j, "padding")) r.error("padding", "only null is supported (tinyvlm never truncates or pads)");
    if (const json* n = r.opt(j, "normalizer")) r.error("normalizer", "only null is supported, got type " + r.get_type(*n, "normalizer"));

    const json* pre = r.opt(j, "pre_tokenizer");
    if (!pre) r.error("pre_tokenizer", "missing or null; expected {\"type\": \"ByteLevel\", ...}");
    if (r.get_type(*pre, "pre_tokenizer") != "ByteLevel")
      r.error("pre_tokenizer.type", "only \"ByteLevel\" is supported, got \"" + r.get_type(*pre, "pre_tokenizer") + "\"");
    read_byte_level(r, *pre, "pre_tokenizer", impl->pipe.pre_add_prefix_space, impl->pipe.pre_trim_offsets,
                    impl->pipe.pre_use_regex);

    if (const json* dec = r.opt(j, "decoder")) {
      const std::string t = r.get_type(*dec, "decoder");
      if (t != "ByteLevel") r.error("decoder.type", "only \"ByteLevel\" or null is supported, got \"" + t + "\"");
      read_byte_level(r, *dec, "decoder", impl->pipe.dec_add_prefix_space, impl->pipe.dec_trim_offsets,
                      impl->pipe.dec_use_regex);
      impl->has_decoder = true;
    } else {
      impl->has_decoder = false;
    }
    impl->pipe.decoder_byte_level = impl->has_decoder;

    if (const json* post = r.opt(j, "post_processor")) {
      const std::string t = r.get_type(*post, "post_processor");
      if (t == "ByteLevel") {
        impl->post.kind = PostKind::ByteLevel;
        read_byte_level(r, *post, "post_processor", impl->post.add_prefix_space, impl->post.trim_offsets,
                        impl->post.use_regex);
      } else if (t == "TemplateProcessing") {
        impl->post.kind = PostKind::Template;
        read_template(r, *post, impl->post);
      } else {
        r.error("post_processor.type", "only \"ByteLevel\", \"TemplateProcessing\" or null are supported, got \"" + t + "\"");
      }
    }

    const json* model = r.opt(j, "model");
    if (!model) r.error("model", "missing");
    read_model(r, *model, *impl);

    if (const json* added = r.opt(j, "added_tokens")) {
      if (!added->is_array()) r.error("added_tokens", "expected an array");
      for (size_t i = 0; i < added->size(); ++i) {
        const json& a = (*added)[i];
        const std::string path = "added_tokens[" + std::to_string(i) + "]";
        if (!a.is_object()) r.error(path, "expected an object");
        AddedToken t;
        const json* c = r.opt(a, "content");
        if (!c || !c->is_string()) r.error(path + ".content", "missing or not a string");
        t.content = c->get<std::string>();
        if (const json* id = r.opt(a, "id"); id && !id->is_number_integer()) r.error(path + ".id", "expected an integer");
        t.single_word = r.get_bool(a, "single_word", path, false);
        t.lstrip = r.get_bool(a, "lstrip", path, false);
        t.rstrip = r.get_bool(a, "rstrip", path, false);
        t.normalized = r.get_bool(a, "normalized", path, true);
        t.special = r.get_bool(a, "special", path, false);
        impl->add_token(t);
      }
    }
    impl->finalize();
    return Tokenizer(std::move(impl));
  };
  try {
    return read();
  } catch (const json::exception& e) {  // e.g. a value of another type than the reader checked for
    fail(source, ": unexpected content (", plain_json_message(e), ")");
  }
}

std::string Tokenizer::to_json() const {
  const Impl& im = *impl_;
  Out o;
  o.s.reserve(im.vocab.size() * 40 + im.merges.size() * 40 + 4096);
  o.begin('{');
  o.key("version");
  o.str("1.0");
  o.key("truncation");
  o.null();
  o.key("padding");
  o.null();
  o.key("added_tokens");
  o.begin('[');
  for (const AddedToken& t : im.added) {
    o.item();
    o.begin('{');
    o.key("id");
    o.number(t.id);
    o.key("content");
    o.str(t.content);
    o.key("single_word");
    o.boolean(t.single_word);
    o.key("lstrip");
    o.boolean(t.lstrip);
    o.key("rstrip");
    o.boolean(t.rstrip);
    o.key("normalized");
    o.boolean(t.normalized);
    o.key("special");
    o.boolean(t.special);
    o.end('}');
  }
  o.end(']');
  o.key("normalizer");
  o.null();
  o.key("pre_tokenizer");
  write_byte_level(o, im.pipe.pre_add_prefix_space, im.pipe.pre_trim_offsets, im.pipe.pre_use_regex);
  o.key("post_processor");
  switch (im.post.kind) {
    case PostKind::None: o.null(); break;
    case PostKind::ByteLevel: write_byte_level(o, im.post.add_prefix_space, im.post.trim_offsets, im.post.use_regex); break;
    case PostKind::Template: write_template(o, im.post); break;
  }
  o.key("decoder");
  if (im.has_decoder) write_byte_level(o, im.pipe.dec_add_prefix_space, im.pipe.dec_trim_offsets, im.pipe.dec_use_regex);
  else o.null();
  o.key("model");
  o.begin('{');
  o.key("type");
  o.str("BPE");
  o.key("dropout");
  o.null();
  o.key("unk_token");
  o.opt_str(im.bpe.unk_token);
  o.key("continuing_subword_prefix");
  o.opt_str(im.bpe.continuing_subword_prefix);
  o.key("end_of_word_suffix");
  o.opt_str(im.bpe.end_of_word_suffix);
  o.key("fuse_unk");
  o.boolean(im.bpe.fuse_unk);
  o.key("byte_fallback");
  o.boolean(im.bpe.byte_fallback);
  o.key("ignore_merges");
  o.boolean(im.bpe.ignore_merges);
  o.key("vocab");
  o.begin('{');
  for (size_t i = 0; i < im.vocab.size(); ++i) {
    if (!im.present[i]) continue;
    o.key(im.vocab[i]);
    o.number(static_cast<int64_t>(i));
  }
  o.end('}');
  o.key("merges");
  o.begin('[');
  for (const auto& [a, b] : im.merges) {
    o.item();
    o.begin('[');
    o.item();
    o.str(im.vocab[a]);
    o.item();
    o.str(im.vocab[b]);
    o.end(']');
  }
  o.end(']');
  o.end('}');
  o.end('}');
  return std::move(o.s);
}

}  // namespace tv::tok
