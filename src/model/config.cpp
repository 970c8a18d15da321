#include "model/config.h"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <toml++/toml.h>

#include "core/error.h"
#include "model/config_keys.h"

namespace tv {
namespace {

void flatten(const toml::table& t, const std::string& prefix, std::map<std::string, Config::Value>& out,
             const std::string& source, std::map<std::string, int64_t>* lines = nullptr) {
  for (const auto& [k, node] : t) {
    std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    if (lines) (*lines)[key] = node.source().begin.line;
    if (const auto* sub = node.as_table()) {
      flatten(*sub, key, out, source, lines);
    } else if (node.is_integer()) {  // asked first: value<int64_t>() of a huge float is undefined
      out[key] = int64_t(node.as_integer()->get());
    } else if (node.is_floating_point()) {
      out[key] = *node.value<double>();
    } else if (node.is_boolean()) {
      out[key] = *node.value<bool>();
    } else if (node.is_string()) {
      out[key] = *node.value<std::string>();
    } else {
      const auto& src = node.source();
      fail(source, ":", src.begin.line, ":", src.begin.column, ": key '", key,
           "' has an unsupported type (expected a number, boolean or string)");
    }
  }
}

std::string type_name(const Config::Value& v) {
  switch (v.index()) {
    case 0: return "integer";
    case 1: return "float";
    case 2: return "boolean";
    default: return "string";
  }
}

// A TOML basic string on one line (keys may not be multi-line strings): '"', '\\' and controls escaped.
std::string quoted_key(const std::string& k) {
  std::string out = "\"";
  for (unsigned char ch : k) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += char(ch);
    } else if (ch < 0x20 || ch == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", ch);
      out += buf;
    } else {
      out += char(ch);
    }
  }
  return out + "\"";
}

// A float that converts to int64 without undefined behaviour and without losing anything.
bool integral_in_range(double d) { return std::floor(d) == d && d >= -9.2e18 && d <= 9.2e18; }

// Why `v` is no value for `key` ("" when it is one): unknown key, or a value of the wrong type.
std::string key_problem(const std::string& key, const Config::Value& v) {
  const ConfigKey* k = find_config_key(key);
  if (!k) {
    std::string near = suggest_config_key(key);
    return "unknown key '" + key + "'" + (near.empty() ? std::string() : " (did you mean '" + near + "'?)");
  }
  bool ok = false;
  switch (k->type) {
    case ConfigKeyType::Int:
      ok = std::holds_alternative<int64_t>(v) ||
           (std::holds_alternative<double>(v) && integral_in_range(std::get<double>(v)));
      break;
    case ConfigKeyType::Number:
      ok = std::holds_alternative<int64_t>(v) || (std::holds_alternative<double>(v) && std::isfinite(std::get<double>(v)));
      break;
    case ConfigKeyType::Bool: ok = std::holds_alternative<bool>(v); break;
    case ConfigKeyType::String: ok = std::holds_alternative<std::string>(v); break;
  }
  if (ok) return "";
  std::string got = type_name(v);
  if (const auto* d = std::get_if<double>(&v)) {
    std::ostringstream os;
    os << *d;
    got += " (" + os.str() + ")";
  }
  return "key '" + key + "' should be " + config_key_type_name(k->type) + ", got a " + got;
}

}  // namespace

Config Config::from_string(const std::string& text, const std::string& source) {
  Config c;
  c.source_ = source;
  try {
    toml::table t = toml::parse(text, source);
    flatten(t, "", c.values_, source, &c.lines_);
  } catch (const toml::parse_error& e) {
    const auto& src = e.source();
    fail(source, ":", src.begin.line, ":", src.begin.column, ": invalid TOML: ", e.description());
  }
  return c;
}

Config Config::from_file(const std::string& path) {
  std::ifstream probe(path);
  if (!probe) fail(path, ": cannot open config file");
  std::stringstream ss;
  ss << probe.rdbuf();
  Config c = from_string(ss.str(), path);
  c.check_keys();
  return c;
}

void Config::check_keys() const {
  for (const auto& [key, v] : values_) {
    std::string problem = key_problem(key, v);
    if (problem.empty()) continue;
    auto line = lines_.find(key);
    if (line != lines_.end()) fail(source_, ":", line->second, ": ", problem);
    fail(source_, ": ", problem);
  }
}

void Config::set_override(const std::string& assignment) {
  size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) fail("--set ", assignment, ": expected key=value");
  std::string key = assignment.substr(0, eq), value = assignment.substr(eq + 1);
  Value parsed = value;  // a bare word (or anything TOML does not read as one value): kept as a string
  try {
    toml::table t = toml::parse("v = " + value);
    std::map<std::string, Value> one;
    flatten(t, "", one, "--set");
    if (t.size() == 1 && one.count("v")) parsed = one.at("v");
  } catch (const toml::parse_error&) {
  } catch (const Error&) {  // an array or table: kept as the string it was given as
  }
  std::string problem = key_problem(key, parsed);
  if (!problem.empty()) fail("--set ", assignment, ": ", problem);
  values_[key] = parsed;
  lines_.erase(key);
}

const Config::Value& Config::require(const std::string& key) const {
  auto it = values_.find(key);
  if (it == values_.end()) fail(source_, ": missing key '", key, "'");
  return it->second;
}

int64_t Config::get_int(const std::string& key) const {
  const Value& v = require(key);
  if (const auto* i = std::get_if<int64_t>(&v)) return *i;
  if (const auto* d = std::get_if<double>(&v); d && integral_in_range(*d)) return int64_t(*d);
  fail(source_, ": key '", key, "' should be an integer, got a ", type_name(v));
}

int64_t Config::get_int(const std::string& key, int64_t fallback) const { return has(key) ? get_int(key) : fallback; }

double Config::get_double(const std::string& key) const {
  const Value& v = require(key);
  if (const auto* d = std::get_if<double>(&v)) {
    if (!std::isfinite(*d)) fail(source_, ": key '", key, "' should be a finite number, got ", *d);
    return *d;
  }
  if (const auto* i = std::get_if<int64_t>(&v)) return double(*i);
  fail(source_, ": key '", key, "' should be a number, got a ", type_name(v));
}

double Config::get_double(const std::string& key, double fallback) const {
  return has(key) ? get_double(key) : fallback;
}

bool Config::get_bool(const std::string& key, bool fallback) const {
  if (!has(key)) return fallback;
  const Value& v = require(key);
  if (const auto* b = std::get_if<bool>(&v)) return *b;
  fail(source_, ": key '", key, "' should be true or false, got a ", type_name(v));
}

std::string Config::get_string(const std::string& key, const std::string& fallback) const {
  if (!has(key)) return fallback;
  const Value& v = require(key);
  if (const auto* s = std::get_if<std::string>(&v)) return *s;
  fail(source_, ": key '", key, "' should be a string, got a ", type_name(v));
}

std::string Config::to_toml() const {
  std::ostringstream os;
  os.precision(17);
  for (const auto& [k, v] : values_) {
    bool quote = k.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != std::string::npos;
    os << (quote ? quoted_key(k) : k);
    os << " = ";
    std::visit(
        [&](const auto& x) {
          using X = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<X, std::string>) {
            os << toml::value<std::string>(x);
          } else if constexpr (std::is_same_v<X, bool>) {
            os << (x ? "true" : "false");
          } else if constexpr (std::is_same_v<X, double>) {
            std::ostringstream d;
            d.precision(17);
            d << x;
            std::string s = d.str();
            if (s.find_first_of(".eEn") == std::string::npos) s += ".0";  // keep it a float in TOML
            os << s;
          } else {
            os << x;
          }
        },
        v);
    os << "\n";
  }
  return os.str();
}

int64_t ModelConfig::rope_period() const {
  if (rope_layers_ratio >= 1.0) return 0;
  return int64_t(1.0 / (1.0 - rope_layers_ratio));
}

bool ModelConfig::is_nope(int64_t layer) const {
  int64_t p = rope_period();
  return p > 0 && (layer + 1) % p == 0;
}

ModelConfig ModelConfig::from(const Config& c) {
  ModelConfig m;
  m.vocab_size = c.get_int("vocab_size", m.vocab_size);
  m.d_model = c.get_int("d_model", m.d_model);
  m.n_heads = c.get_int("n_heads", m.n_heads);
  m.n_kv_heads = c.get_int("n_kv_heads", m.n_kv_heads);
  m.n_layers = c.get_int("n_layers", m.n_layers);
  m.max_seq_len = c.get_int("max_seq_len", m.max_seq_len);
  m.num_experts = c.get_int("num_experts", m.num_experts);
  m.num_experts_per_tok = c.get_int("num_experts_per_tok", m.num_experts_per_tok);
  m.moe_layer_freq = c.get_int("moe_layer_freq", m.moe_layer_freq);
  m.d_expert = c.get_int("d_expert", m.d_expert);
  m.d_ff_standard = c.get_int("d_ff_standard", m.d_ff_standard);
  m.rope_layers_ratio = c.get_double("rope_layers_ratio", m.rope_layers_ratio);
  m.rope_theta = c.get_double("rope_theta", m.rope_theta);
  m.chunk_size = c.get_int("chunk_size", m.chunk_size);
  m.vision_hidden_size = c.get_int("vision_hidden_size", m.vision_hidden_size);
  m.patch_size = c.get_int("patch_size", m.patch_size);
  m.image_size = c.get_int("image_size", m.image_size);
  m.validate(c.source());
  return m;
}

void ModelConfig::validate(const std::string& src) const {
  // Positive and small enough that products of shapes cannot overflow (2^24 is far above any real model).
  auto positive = [&](const char* key, int64_t v) {
    if (v <= 0) fail(src, ": key '", key, "' must be positive, got ", v);
    if (v > (int64_t(1) << 24)) fail(src, ": key '", key, "' = ", v, " is out of range (at most 16777216)");
  };
  positive("vocab_size", vocab_size);
  positive("d_model", d_model);
  positive("n_heads", n_heads);
  positive("n_kv_heads", n_kv_heads);
  positive("n_layers", n_layers);
  positive("max_seq_len", max_seq_len);
  positive("num_experts", num_experts);
  positive("num_experts_per_tok", num_experts_per_tok);
  positive("d_expert", d_expert);
  positive("d_ff_standard", d_ff_standard);
  positive("chunk_size", chunk_size);
  if (moe_layer_freq < 0) fail(src, ": key 'moe_layer_freq' must be >= 0 (0 = no MoE layers)");
  if (d_model % n_heads) fail(src, ": d_model (", d_model, ") must be divisible by n_heads (", n_heads, ")");
  if (n_heads % n_kv_heads) fail(src, ": n_heads (", n_heads, ") must be divisible by n_kv_heads (", n_kv_heads, ")");
  if (d_head() % 2) fail(src, ": the head size d_model/n_heads = ", d_head(), " must be even for RoPE");
  if (num_experts_per_tok > num_experts)
    fail(src, ": num_experts_per_tok (", num_experts_per_tok, ") exceeds num_experts (", num_experts, ")");
  if (!(rope_layers_ratio >= 0.0 && rope_layers_ratio <= 1.0))
    fail(src, ": key 'rope_layers_ratio' must be in [0, 1], got ", rope_layers_ratio);
  if (!(rope_theta > 0 && std::isfinite(rope_theta))) fail(src, ": key 'rope_theta' must be positive and finite");
}

}  // namespace tv
