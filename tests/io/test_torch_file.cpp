// torch.save checkpoints: the zip directory, the restricted unpickler and tensor layouts, against the
// fixtures of scripts/fixtures/torch_checkpoint_fixtures.py, plus clear errors for damaged files.
#include <unistd.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "io/torch_file.h"
#include "io/zip_reader.h"

using namespace tv;
namespace fs = std::filesystem;

namespace {

const std::string kDir = std::string(TV_FIXTURE_DIR) + "/torch/";

std::string tmp_path(const std::string& name) {
  return (fs::temp_directory_path() / ("tinyvlm_torch_" + std::to_string(getpid()) + "_" + name)).string();
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && a.nbytes() == b.nbytes() &&
         (a.nbytes() == 0 || std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0);
}

// The message of the tv::Error that `f` throws ("" if none).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

size_t find_bytes(const std::string& hay, const std::string& needle, size_t from = 0) {
  size_t at = hay.find(needle, from);
  EXPECT_NE(at, std::string::npos) << "fixture lacks the expected bytes";
  return at;
}

void put_u16(std::string& s, size_t at, uint16_t v) {
  s[at] = char(v & 0xff);
  s[at + 1] = char(v >> 8);
}

}  // namespace

TEST(TorchFile, PlainStateDictMatchesWhatTorchSaved) {
  TorchFile f(kDir + "tensors.pt");
  SafetensorsFile want(kDir + "tensors_expected.safetensors");
  EXPECT_EQ(f.state_dict_key(), "");
  EXPECT_EQ(f.skipped_entries(), 1);  // not_a_tensor
  EXPECT_TRUE(f.metadata().empty());
  const std::vector<std::string> order = {"bf16",     "f16",      "scalar",         "i64",      "f64",
                                          "i32",      "u8",       "bool",           "transposed", "shared_a",
                                          "shared_b", "shared_strided", "shared_t", "expanded", "empty",
                                          "param"};
  EXPECT_EQ(f.names(), order);
  for (const std::string& n : order) {
    SCOPED_TRACE(n);
    ASSERT_TRUE(want.has(n));
    EXPECT_EQ(f.shape(n), want.shape(n));
    EXPECT_TRUE(same_bytes(f.get(n), want.get(n)));
  }
  // The conversions, against torch's own.
  EXPECT_TRUE(same_bytes(f.get("f16"), want.get("f16:f32")));
  EXPECT_TRUE(same_bytes(f.get("bf16", DType::F32), want.get("bf16:f32")));
  EXPECT_TRUE(same_bytes(f.get("i64"), want.get("i64:i32")));
  EXPECT_EQ(f.get("bf16").dtype(), DType::BF16);
  EXPECT_EQ(f.get("scalar").shape(), Shape{});
  EXPECT_EQ(f.get("scalar").data<float>()[0], 2.5f);
  EXPECT_EQ(f.get("empty").shape(), (Shape{0, 3}));

  // The layouts really are what the test is about: views of one storage, strides, a broadcast.
  EXPECT_EQ(f.layout("transposed").stride, (Shape{1, 5}));
  EXPECT_EQ(f.layout("expanded").stride, (Shape{0, 1}));
  const std::string shared = f.layout("shared_a").storage;
  for (const char* n : {"shared_b", "shared_strided", "shared_t"}) EXPECT_EQ(f.layout(n).storage, shared) << n;
  EXPECT_EQ(f.layout("shared_a").offset, 2);
  EXPECT_EQ(f.layout("shared_b").offset, 10);
  EXPECT_EQ(f.layout("shared_strided").stride, Shape{5});
  EXPECT_EQ(f.layout("shared_t").offset, 12);
  EXPECT_EQ(f.layout("shared_t").stride, (Shape{1, 4}));
  EXPECT_TRUE(contains(error_of([&] { f.get("missing"); }), "'missing'"));
}

TEST(TorchFile, OriginalCheckpointHoldsTheTinyDecoder) {
  TorchFile f(kDir + "tiny_checkpoint.pt");
  SafetensorsFile want(std::string(TV_FIXTURE_DIR) + "/model/tiny_params.safetensors");
  EXPECT_EQ(f.state_dict_key(), "model_state_dict");
  EXPECT_EQ(f.skipped_entries(), 0);
  std::vector<std::string> a = f.names(), b = want.names();
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  EXPECT_EQ(a, b) << "model_state_dict should hold exactly the decoder's tensors (optimizer state is not weights)";
  for (const std::string& n : f.names()) EXPECT_TRUE(same_bytes(f.get(n), want.get(n))) << n;
  EXPECT_EQ(f.metadata().at("epoch"), "3");
  EXPECT_EQ(f.metadata().at("val_loss"), "1.25");
  EXPECT_EQ(std::stod(f.metadata().at("val_ppl")), 3.4903429574618414);
  EXPECT_EQ(f.metadata().count("config"), 0u);
}

TEST(TorchFile, OpenTensorFileChoosesTheReaderByMagic) {
  auto pt = open_tensor_file(kDir + "tiny_checkpoint.pt");
  EXPECT_NE(dynamic_cast<TorchFile*>(pt.get()), nullptr);
  auto st = open_tensor_file(kDir + "tensors_expected.safetensors");
  EXPECT_NE(dynamic_cast<SafetensorsFile*>(st.get()), nullptr);
  EXPECT_TRUE(same_bytes(pt->get("rms_norm.gamma", DType::F32, {32}),
                         open_tensor_file(std::string(TV_FIXTURE_DIR) + "/model/tiny_params.safetensors")
                             ->get("rms_norm.gamma")));

  const std::string path = tmp_path("neither.bin");
  write_file_atomic(path, "hello, world");
  std::string e = error_of([&] { open_tensor_file(path); });
  EXPECT_TRUE(contains(e, path) && contains(e, "neither")) << e;
  write_file_atomic(path, std::string("\x80\x02}q\x00.", 6));
  e = error_of([&] { open_tensor_file(path); });
  EXPECT_TRUE(contains(e, path) && contains(e, "1.6")) << e;
  write_file_atomic(path, "");
  e = error_of([&] { open_tensor_file(path); });
  EXPECT_TRUE(contains(e, path) && contains(e, "empty")) << e;
  fs::remove(path);
}

// Damaged copies of a good file: each gives a tv::Error naming the file and the byte offset.
TEST(TorchFile, DamagedFilesGiveClearErrors) {
  const std::string good = read_file(kDir + "tensors.pt");
  const std::string path = tmp_path("bad.pt");
  auto error_for = [&](const std::string& bytes) {
    write_file_atomic(path, bytes);
    return error_of([&] { TorchFile f(path); });
  };

  // Truncated: the directory at the end is gone.
  std::string e = error_for(good.substr(0, good.size() / 2));
  EXPECT_TRUE(contains(e, path) && contains(e, "truncated") && contains(e, "bytes 0 to")) << e;

  // Bytes cut out of the middle: the directory's offsets now point at the wrong places.
  std::string cut = good.substr(0, 200) + good.substr(300);
  e = error_for(cut);
  EXPECT_TRUE(contains(e, path) && contains(e, "at byte")) << e;

  // A corrupt central directory entry (its signature overwritten).
  const size_t cd = find_bytes(good, "PK\x01\x02");
  const size_t third = find_bytes(good, "PK\x01\x02", find_bytes(good, "PK\x01\x02", cd + 4) + 4);
  std::string corrupt = good;
  corrupt[third + 2] = 'X';
  e = error_for(corrupt);
  EXPECT_TRUE(contains(e, path) && contains(e, "at byte " + std::to_string(third)) && contains(e, "PK\\x01\\x02"))
      << e;

  // A compressed (deflate) entry: the method field of the first directory entry says 8.
  std::string deflated = good;
  put_u16(deflated, cd + 10, 8);
  e = error_for(deflated);
  EXPECT_TRUE(contains(e, path) && contains(e, "at byte " + std::to_string(cd)) && contains(e, "compressed") &&
              contains(e, "data.pkl"))
      << e;

  // A pickle naming a global outside the whitelist (same length, so the archive stays intact).
  std::string evil = good;
  const size_t g = find_bytes(evil, "collections\nOrderedDict");
  evil.replace(g, 23, "subprocess\ncheck_output");
  e = error_for(evil);
  EXPECT_TRUE(contains(e, path) && contains(e, "subprocess.check_output") && contains(e, "byte ") &&
              contains(e, "file byte " + std::to_string(g - 1)))
      << e;

  // A tensor reaching past its storage: the first tensor's size 3 (BININT1 3) made 30.
  std::string oob = good;
  const size_t storage = find_bytes(oob, "BFloat16Storage");
  const size_t size_op = find_bytes(oob, std::string("K\x03K\x04\x86", 5), storage);
  oob[size_op + 1] = 30;
  e = error_for(oob);
  EXPECT_TRUE(contains(e, path) && contains(e, "outside its storage")) << e;
  fs::remove(path);
}

// Zip64 as large archives need it: every size and offset in the zip64 extra field, the record counts in the
// zip64 end-of-central-directory record.
TEST(ZipReader, ReadsZip64FieldsAndFindsEntryData) {
  std::string z;
  auto u16 = [&](uint64_t v) { z.append({char(v & 0xff), char(v >> 8 & 0xff)}); };
  auto u32 = [&](uint64_t v) { u16(v & 0xffff); u16(v >> 16 & 0xffff); };
  auto u64 = [&](uint64_t v) { u32(v & 0xffffffff); u32(v >> 32); };
  const std::vector<std::pair<std::string, std::string>> files = {{"a/data.pkl", "pickle!"}, {"a/data/0", "0123456789"}};
  std::vector<uint64_t> headers, begins;
  for (const auto& [name, data] : files) {
    headers.push_back(z.size());
    u32(0x04034b50); u16(45); u16(0); u16(0); u16(0); u16(0); u32(0); u32(0xffffffff); u32(0xffffffff);
    u16(name.size()); u16(3);  // 3 bytes of padding in the local extra field
    z += name + "pad";
    begins.push_back(z.size());
    z += data;
  }
  const uint64_t cd = z.size();
  for (size_t i = 0; i < files.size(); ++i) {
    const auto& [name, data] = files[i];
    u32(0x02014b50); u16(45); u16(45); u16(0); u16(0); u16(0); u16(0); u32(0);
    u32(0xffffffff); u32(0xffffffff); u16(name.size()); u16(4 + 24); u16(0); u16(0); u16(0); u32(0); u32(0xffffffff);
    z += name;
    u16(1); u16(24); u64(data.size()); u64(data.size()); u64(headers[i]);
  }
  const uint64_t cd_size = z.size() - cd, rec = z.size();
  u32(0x06064b50); u64(44); u16(45); u16(45); u32(0); u32(0); u64(files.size()); u64(files.size()); u64(cd_size); u64(cd);
  u32(0x07064b50); u32(0); u64(rec); u32(1);
  u32(0x06054b50); u16(0); u16(0); u16(0xffff); u16(0xffff); u32(0xffffffff); u32(0xffffffff); u16(0);

  auto bytes = reinterpret_cast<const unsigned char*>(z.data());
  std::vector<ZipEntry> entries = read_zip_directory("z64.zip", bytes, z.size());
  ASSERT_EQ(entries.size(), 2u);
  for (size_t i = 0; i < files.size(); ++i) {
    EXPECT_EQ(entries[i].name, files[i].first);
    EXPECT_EQ(entries[i].begin, begins[i]);
    EXPECT_EQ(z.substr(entries[i].begin, entries[i].size), files[i].second);
  }
  // Without the locator the saturated fields cannot be resolved.
  std::string broken = z;
  broken[rec + 56] = 'X';  // the locator's signature
  std::string e = error_of([&] {
    read_zip_directory("z64.zip", reinterpret_cast<const unsigned char*>(broken.data()), broken.size());
  });
  EXPECT_TRUE(contains(e, "z64.zip") && contains(e, "zip64 locator")) << e;
}

// A dtype tinyvlm cannot load fails only when that tensor is read; uint16 comes through _rebuild_tensor_v3.
TEST(TorchFile, UnusualDtypesFailOnlyWhenRead) {
  TorchFile f(kDir + "odd_dtypes.pt");
  ASSERT_EQ(f.names().size(), 3u);
  Tensor w = f.get("w");
  ASSERT_EQ(w.dtype(), DType::F32);
  EXPECT_EQ(w.data<float>()[1], -2.0f);
  EXPECT_EQ(f.dtype_name("ch"), "complex32");
  const std::string e = error_of([&] { f.get("ch"); });
  EXPECT_TRUE(contains(e, kDir + "odd_dtypes.pt") && contains(e, "'ch'") && contains(e, "cannot load")) << e;
  Tensor u = f.get("u16");
  ASSERT_EQ(u.dtype(), DType::U16);
  ASSERT_EQ(u.numel(), 3);
  EXPECT_EQ(u.data<uint16_t>()[1], 65535);
  EXPECT_EQ(u.data<uint16_t>()[2], 300);
}

// A view wider than its storage is materialised by get(): past a limit (here 4 stored bytes that would become
// 16 GiB) the file is refused when opened, with the offset, instead of allocating.
TEST(TorchFile, HugeBroadcastViewIsRefused) {
  const std::string e = error_of([&] { TorchFile f(kDir + "broadcast.pt"); });
  EXPECT_TRUE(contains(e, kDir + "broadcast.pt") && contains(e, "file byte ") &&
              contains(e, "views wider than their storage"))
      << e;
}

// safetensors headers with negative dimensions, or dimensions whose product overflows to the claimed size.
TEST(Safetensors, RejectsNegativeAndOverflowingShapes) {
  const std::string path = tmp_path("bad_shape.safetensors");
  auto error_for = [&](const std::string& header, size_t data_bytes) {
    std::string bytes(8, '\0');
    for (int i = 0; i < 8; ++i) bytes[size_t(i)] = char(header.size() >> (8 * i) & 0xff);
    write_file_atomic(path, bytes + header + std::string(data_bytes, '\0'));
    return error_of([&] { SafetensorsFile f(path); });
  };
  std::string e = error_for(R"({"t":{"dtype":"F32","shape":[-1,-4],"data_offsets":[0,16]}})", 16);
  EXPECT_TRUE(contains(e, path) && contains(e, "negative or too large dimension")) << e;
  e = error_for(R"({"t":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", 0);
  EXPECT_TRUE(contains(e, path) && contains(e, "negative or too large dimension")) << e;
  fs::remove(path);
}

// Copies made by set() / OrderedDict(pairs) are bounded by the pickle's size: 14 KB asking for 4 million copied
// items stop with the offset instead of growing memory quadratically.
TEST(TorchFile, RepeatedCopiesOfOneListAreBounded) {
  const std::string e = error_of([&] { TorchFile f(kDir + "copies.pt"); });
  EXPECT_TRUE(contains(e, kDir + "copies.pt") && contains(e, "file byte ") && contains(e, "copies more items")) << e;
}
