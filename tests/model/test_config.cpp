#include <gtest/gtest.h>

#include "core/error.h"
#include "model/config.h"

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
  c.set_override("name=tiny");
  EXPECT_DOUBLE_EQ(c.get_double("lr"), 1e-3);
  EXPECT_EQ(c.get_int("d_model"), 128);
  EXPECT_EQ(c.get_string("name", ""), "tiny");
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
