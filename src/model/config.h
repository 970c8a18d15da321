// Configuration: the original's flat config.toml, read unchanged, plus tinyvlm's own keys.
// Keys are looked up by name; `--set key=value` overrides any key (value parsed as a TOML value).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

namespace tv {

// A flat key -> value table. Nested TOML tables are flattened with dots ("train.lr").
class Config {
 public:
  using Value = std::variant<int64_t, double, bool, std::string>;

  // A user's file: every key must be known (model/config_keys.h) and of its type; errors name the file,
  // line and key, and suggest the closest known key for an unknown one.
  static Config from_file(const std::string& path);
  // Any TOML text (a checkpoint's stored config, a test's): keys are not checked until check_keys().
  static Config from_string(const std::string& toml, const std::string& source = "<string>");
  void check_keys() const;

  // "key=value": value parsed as TOML (numbers, booleans, quoted strings; bare words become strings).
  // The key must be known and the value of its type; errors name `--set key=value`.
  void set_override(const std::string& assignment);
  void set(const std::string& key, Value v) { values_[key] = std::move(v); }

  bool has(const std::string& key) const { return values_.count(key) > 0; }
  int64_t get_int(const std::string& key) const;
  int64_t get_int(const std::string& key, int64_t fallback) const;
  double get_double(const std::string& key) const;  // ints are accepted
  double get_double(const std::string& key, double fallback) const;
  bool get_bool(const std::string& key, bool fallback) const;
  std::string get_string(const std::string& key, const std::string& fallback) const;

  const std::string& source() const { return source_; }
  const std::map<std::string, Value>& values() const { return values_; }
  std::string to_toml() const;  // flat, sorted; what checkpoints store in their metadata

 private:
  const Value& require(const std::string& key) const;
  std::string source_;
  std::map<std::string, Value> values_;
  std::map<std::string, int64_t> lines_;  // the line of each key read from TOML text, for errors
};

// The decoder's shape (docs/spec.md sections 1-2). Derived rules live here so every part agrees.
struct ModelConfig {
  int64_t vocab_size = 32000;
  int64_t d_model = 768, n_heads = 12, n_kv_heads = 4, n_layers = 12;
  int64_t max_seq_len = 1024;
  int64_t num_experts = 8, num_experts_per_tok = 2, moe_layer_freq = 2;
  int64_t d_expert = 1024, d_ff_standard = 2048;
  double rope_layers_ratio = 0.75, rope_theta = 10000.0;
  int64_t chunk_size = 512;
  int64_t vision_hidden_size = 768, patch_size = 16, image_size = 224;

  int64_t d_head() const { return d_model / n_heads; }
  // period = int(1 / (1 - ratio)) as Python computes it; a ratio of 1 means no NoPE layers.
  int64_t rope_period() const;
  bool is_nope(int64_t layer) const;
  bool is_moe(int64_t layer) const { return moe_layer_freq > 0 && layer % moe_layer_freq == moe_layer_freq - 1; }

  // Reads the keys (all optional, defaults above) and validates them; errors name the key.
  static ModelConfig from(const Config& c);
  void validate(const std::string& source) const;
};

}  // namespace tv
