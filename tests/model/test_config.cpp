#include <unistd.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "core/error.h"
#include "model/config.h"
#include "model/config_keys.h"

using namespace tv;

TEST(Config, ReadsTheOriginalFlatFormat) {
  Config c = Config::from_string(R"(
# LLaMA 4 Transformer Configuration
batch_size = 64
vocab_size = 32000
d_model = 768
n_heads = 12
n_kv_heads = 4  # GQA
n_layers = 12
rope_layers_ratio = 0.75
rope_theta = 10000
chunk_size = 512
)");
  ModelConfig m = ModelConfig::from(c);
  EXPECT_EQ(m.d_head(), 64);
  EXPECT_EQ(m.rope_period(), 4);
  EXPECT_TRUE(m.is_nope(3));
  EXPECT_TRUE(m.is_nope(11));
  EXPECT_FALSE(m.is_nope(4));
  EXPECT_TRUE(m.is_moe(1));
  EXPECT_FALSE(m.is_moe(2));
  EXPECT_EQ(c.get_int("batch_size"), 64);
  EXPECT_DOUBLE_EQ(c.get_double("rope_theta"), 10000.0);
}

TEST(Config, OverridesAndRoundTrip) {
  Config c = Config::from_string("d_model = 64\nn_heads = 4\n");
  c.set_override("lr=1e-3");
  c.set_override("d_model=128");
  c.set_override("matmul_precision=tiny");
  EXPECT_DOUBLE_EQ(c.get_double("lr"), 1e-3);
  EXPECT_EQ(c.get_int("d_model"), 128);
  EXPECT_EQ(c.get_string("matmul_precision", ""), "tiny");
  Config back = Config::from_string(c.to_toml());
  EXPECT_EQ(back.values(), c.values());
  EXPECT_THROW(c.set_override("novalue"), Error);
}

TEST(Config, MalformedConfigsStopWithTheKeyNamed) {
  auto message = [](const std::string& toml) {
    try {
      ModelConfig::from(Config::from_string(toml, "cfg.toml"));
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(message("d_model = 100\nn_heads = 12\n").find("divisible"), std::string::npos);
  EXPECT_NE(message("d_model = \"big\"\n").find("'d_model'"), std::string::npos);
  EXPECT_NE(message("d_model = 64\nn_heads = [1\n").find("cfg.toml:2"), std::string::npos);
  EXPECT_NE(message("num_experts = 2\nnum_experts_per_tok = 3\n").find("num_experts_per_tok"), std::string::npos);
}

namespace {
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
std::string write_temp(const std::string& name, const std::string& text) {
  std::string path = (std::filesystem::temp_directory_path() / (name + std::to_string(getpid()) + ".toml")).string();
  std::ofstream(path) << text;
  return path;
}
}  // namespace

TEST(Config, UnknownKeysInAFileAreErrorsWithASuggestion) {
  std::string path = write_temp("cfg_unknown", "d_model = 64\nwieght_decay = 5.0\n");
  std::string e = error_of([&] { Config::from_file(path); });
  EXPECT_NE(e.find(path + ":2"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown key 'wieght_decay'"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'weight_decay'"), std::string::npos) << e;
  std::filesystem::remove(path);
}

TEST(Config, TypeErrorsNameFileLineAndKey) {
  std::string path = write_temp("cfg_type", "# comment\nn_layers = 2\nd_model = \"big\"\n");
  std::string e = error_of([&] { Config::from_file(path); });
  EXPECT_NE(e.find(path + ":3"), std::string::npos) << e;
  EXPECT_NE(e.find("'d_model'"), std::string::npos) << e;
  std::filesystem::remove(path);
}

TEST(Config, SetErrorsNameSetAndSuggest) {
  Config c = Config::from_string("d_model = 64\n", "cfg.toml");
  std::string e = error_of([&] { c.set_override("lrr=5"); });
  EXPECT_NE(e.find("--set lrr=5"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'lr'"), std::string::npos) << e;
  EXPECT_EQ(e.find("cfg.toml"), std::string::npos) << e;
  e = error_of([&] { c.set_override("d_model=abc"); });
  EXPECT_NE(e.find("--set d_model=abc"), std::string::npos) << e;
  EXPECT_EQ(e.find("cfg.toml"), std::string::npos) << e;
  EXPECT_NE(error_of([&] { c.set_override("lr=inf"); }).find("finite"), std::string::npos);
  EXPECT_NE(error_of([&] { c.set_override("lr=nan"); }).find("finite"), std::string::npos);
}

TEST(Config, EveryKeyOfTheOriginalsConfigIsKnown) {
  // The original's config.toml keys and those its phase 2-4 scripts read.
  for (const char* k : {"batch_size", "batches_per_epoch", "vocab_size", "d_model", "n_heads", "n_kv_heads", "n_layers",
                        "max_seq_len", "num_experts", "num_experts_per_tok", "moe_layer_freq", "d_expert", "d_ff_standard",
                        "rope_layers_ratio", "rope_theta", "chunk_size", "vision_hidden_size", "patch_size", "image_size",
                        "vlm_batch_size", "vlm_epochs", "vlm_batches_per_epoch", "vlm_learning_rate", "vlm_weight_decay",
                        "vlm_max_grad_norm", "vlm_max_seq_len", "vlm_warmup_steps", "vlm_val_batches",
                        "instruct_batch_size", "instruct_epochs", "instruct_batches_per_epoch", "instruct_learning_rate",
                        "instruct_weight_decay", "instruct_max_grad_norm", "instruct_max_seq_len", "instruct_warmup_steps",
                        "instruct_val_batches", "instruct_log_interval", "dpo_batch_size", "dpo_epochs",
                        "dpo_batches_per_epoch", "dpo_learning_rate", "dpo_weight_decay", "dpo_beta", "dpo_max_seq_len",
                        "dpo_warmup_steps", "dpo_val_batches", "dpo_log_interval", "dpo_save_interval",
                        "instruct_group_by_length", "dpo_loss", "dpo_val_every", "max_skips", "checkpoint_minutes"})
    EXPECT_NE(find_config_key(k), nullptr) << k;
}

TEST(Config, HugeOrInfiniteFloatsForIntegerKeysAreErrorsNotUndefined) {
  // 9.2e18 and more do not fit int64: converting them was undefined behaviour.
  for (const char* text : {"d_model = 9.3e18\n", "d_model = 1e300\n", "d_model = inf\n", "d_model = -inf\n", "d_model = nan\n"}) {
    std::string e = error_of([&] { ModelConfig::from(Config::from_string(text, "c.toml")); });
    EXPECT_NE(e.find("d_model"), std::string::npos) << text << ": " << e;
    std::string path = write_temp("cfg_inf", text);
    e = error_of([&] { Config::from_file(path); });
    EXPECT_NE(e.find(path + ":1"), std::string::npos) << text << ": " << e;
    std::filesystem::remove(path);
  }
  EXPECT_NE(error_of([&] { ModelConfig::from(Config::from_string("d_model = 1099511627776\n")); }).find("out of range"),
            std::string::npos);
}

TEST(Config, StoredKeysWithQuotesAndBackslashesReadBack) {
  Config c = Config::from_string("\"a\\\"b\" = 1\n\"c\\\\d\" = \"x\\\"y\"\n\"e\\nf\" = 2\n");
  ASSERT_EQ(c.values().size(), 3u);
  Config back = Config::from_string(c.to_toml());
  EXPECT_EQ(back.values(), c.values());
}
