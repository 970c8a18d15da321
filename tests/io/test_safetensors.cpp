#include <unistd.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "io/atomic_file.h"
#include "io/safetensors.h"

using namespace tv;
namespace fs = std::filesystem;

namespace {
std::string tmp_path(const std::string& name) { return (fs::temp_directory_path() / ("tinyvlm_test_" + std::to_string(getpid()) + "_" + name)).string(); }
}  // namespace

TEST(Safetensors, RoundTripWithMetadata) {
  std::string path = tmp_path("rt.safetensors");
  Tensor a = Tensor::from_f32({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor b = Tensor::from_i32({4}, {7, -8, 9, 10});
  Tensor c = a.to(DType::BF16);
  save_safetensors(path, {{"a", a}, {"b", b}, {"c", c}}, {{"config", "d_model = 4\n"}});
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  SafetensorsFile f(path);
  EXPECT_EQ(f.names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(f.metadata().at("config"), "d_model = 4\n");
  Tensor a2 = f.get("a");
  for (int i = 0; i < 6; ++i) EXPECT_EQ(a2.data<float>()[i], a.data<float>()[i]);
  EXPECT_EQ(f.get("b").data<int32_t>()[1], -8);
  EXPECT_EQ(f.get("c").dtype(), DType::BF16);
  EXPECT_FLOAT_EQ(f.get("c", DType::F32).data<float>()[5], 6.0f);
  EXPECT_THROW(f.get("a", DType::F32, {3, 2}), Error);
  EXPECT_THROW(f.get("missing"), Error);
  fs::remove(path);
}

TEST(Safetensors, CorruptFilesGiveClearErrors) {
  std::string path = tmp_path("bad.safetensors");
  {
    std::ofstream o(path, std::ios::binary);
    o << "abc";
  }
  try {
    SafetensorsFile f(path);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  {
    std::ofstream o(path, std::ios::binary);
    uint64_t n = 1000;
    o.write(reinterpret_cast<const char*>(&n), 8);
    o << "{}";
  }
  EXPECT_THROW(SafetensorsFile f(path), Error);
  // A header whose offsets do not fit the shape.
  {
    std::string h = R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[0,8]}})";
    std::ofstream o(path, std::ios::binary);
    uint64_t n = h.size();
    o.write(reinterpret_cast<const char*>(&n), 8);
    o << h << std::string(8, '\0');
  }
  try {
    SafetensorsFile f(path);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'x'"), std::string::npos) << e.what();
  }
  fs::remove(path);
}

TEST(AtomicFile, UncommittedWriteLeavesTheOldFile) {
  std::string path = tmp_path("atomic.txt");
  write_file_atomic(path, "old");
  {
    AtomicFile f(path);
    f.write("new contents");
    // destroyed without commit, as when an exception interrupts a checkpoint
  }
  EXPECT_EQ(read_file(path), "old");
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  fs::remove(path);
}
