// The command line as a user meets it: help for every subcommand, clear errors for bad input, and the
// inference commands on a checkpoint trained in the test.
#include <unistd.h>
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/atomic_file.h"
#include "io/tensor_source.h"
#include "model/llama.h"
#include "train/trainer.h"

using namespace tv;
namespace fs = std::filesystem;

namespace {

struct Result {
  int code = -1;
  std::string out;  // stdout and stderr together
};

Result run(const std::string& args, bool with_stderr = true) {
  std::string cmd = std::string(TV_TINYVLM_BIN) + " " + args + (with_stderr ? " 2>&1" : " 2>/dev/null");
  Result r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

const char* kConfig = R"(vocab_size = 50
d_model = 32
n_heads = 4
n_kv_heads = 2
n_layers = 4
max_seq_len = 16
num_experts = 4
num_experts_per_tok = 2
d_expert = 24
d_ff_standard = 40
chunk_size = 5
)";

// A random tiny decoder saved as tinyvlm saves checkpoints (config in the metadata).
std::string make_checkpoint(const fs::path& dir) {
  Config c = Config::from_string(kConfig);
  ParamStore params;
  Llama model(ModelConfig::from(c), params);
  Rng rng(3);
  model.init_weights(rng);
  std::string path = (dir / "model.safetensors").string();
  save_model(path, params, {{"config", c.to_toml()}});
  return path;
}

}  // namespace

TEST(Cli, EverySubcommandHasHelp) {
  Result top = run("--help");
  ASSERT_EQ(top.code, 0);
  for (const char* sub : {"demo", "pretrain", "generate", "perplexity", "bench", "tokenizer", "tokenize", "align",
                          "encode-image", "inspect", "convert", "ask", "chat", "instruct", "eval", "serve", "dpo"}) {
    EXPECT_NE(top.out.find(sub), std::string::npos) << sub;
    Result r = run(std::string(sub) + " --help");
    EXPECT_EQ(r.code, 0) << sub << ": " << r.out;
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << sub;
  }
}

TEST(Cli, MalformedConfigStopsBeforeAnyWorkNamingTheKey) {
  fs::path dir = fs::temp_directory_path() / ("tinyvlm_cli_cfg_" + std::to_string(getpid()));
  fs::create_directories(dir);
  write_file_atomic((dir / "bad.toml").string(), "d_model = 100\nn_heads = 12\n");
  write_file_atomic((dir / "data.txt").string(), "hello");
  Result r = run("pretrain --config " + (dir / "bad.toml").string() + " --data " + (dir / "data.txt").string() +
                 " --out " + (dir / "run").string());
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("bad.toml"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("divisible"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(dir / "run")) << "no work may start on a malformed config";
  fs::remove_all(dir);
}

TEST(Cli, PerplexityAndGenerateOnACheckpoint) {
  fs::path dir = fs::temp_directory_path() / ("tinyvlm_cli_infer_" + std::to_string(getpid()));
  fs::create_directories(dir);
  std::string ckpt = make_checkpoint(dir);
  write_file_atomic((dir / "ids.txt").string(), "1 5 9 13 2 7 7 30 41 8\n");
  Result p = run("perplexity --model " + ckpt + " --ids-file " + (dir / "ids.txt").string() + " --threads 1");
  ASSERT_EQ(p.code, 0) << p.out;
  auto j = nlohmann::json::parse(p.out.substr(p.out.find('{')));
  EXPECT_EQ(j["tokens"].get<int64_t>(), 9);
  EXPECT_NEAR(j["perplexity"].get<double>(), std::exp(j["cross_entropy"].get<double>()), 1e-9);
  EXPECT_GT(j["aux_loss"].get<double>(), 0.0);

  std::string gen = "generate --model " + ckpt + " --prompt-ids \"4 8 15 16 23 42\" --max-tokens 12 --print-ids --threads 1";
  Result a = run(gen, false), b = run(gen + " --no-cache", false);
  ASSERT_EQ(a.code, 0) << a.out;
  ASSERT_EQ(b.code, 0) << b.out;
  std::string ids_a = a.out.substr(0, a.out.find('\n')), ids_b = b.out.substr(0, b.out.find('\n'));
  EXPECT_FALSE(ids_a.empty());
  EXPECT_EQ(ids_a, ids_b) << "KV-cache and recomputed greedy generation differ";

  Result bad = run("generate --model " + ckpt + " --prompt-ids \"4 x 15\"");
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.out.find("item 1"), std::string::npos) << bad.out;
  Result oob = run("perplexity --model " + ckpt + " --ids-file " + (dir / "ids.txt").string() + " --set vocab_size=40");
  EXPECT_NE(oob.code, 0);
  fs::remove_all(dir);
}

// The README's main job, scaled down, run from another directory with a relative output path.
TEST(Cli, DemoRunsEndToEndWithARelativeOutputDirectory) {
  fs::path dir = fs::temp_directory_path() / ("tinyvlm_cli_demo_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::string cmd = "cd " + dir.string() + " && " + std::string(TV_TINYVLM_BIN) +
                    " demo --out runs/demo --documents 300 --steps 12 --align-steps 8 --instruct-steps 8 --dpo-steps 4 --no-answer-check --images 40 "
                    "--threads 1 2>&1";
  Result r;
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  int status = pclose(p);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << r.out;
  EXPECT_NE(r.out.find("img0039.png:"), std::string::npos) << r.out;  // a caption was generated
  EXPECT_TRUE(fs::exists(dir / "runs/demo/pretrain/best.safetensors"));
  EXPECT_TRUE(fs::exists(dir / "runs/demo/align/best.safetensors"));
  // Piped, the output reads in order: each result under its step's banner (stdout and stderr interleaved
  // as written), each caption beside the expected one.
  const size_t caption_banner = r.out.find("== 7/10"), caption = r.out.find("img0039.png:"), next = r.out.find("== 8/10");
  ASSERT_NE(caption_banner, std::string::npos) << r.out;
  ASSERT_NE(next, std::string::npos) << r.out;
  EXPECT_LT(caption_banner, caption) << r.out;
  EXPECT_LT(caption, next) << r.out;
  EXPECT_NE(r.out.substr(caption, r.out.find('\n', caption) - caption).find("expected: "), std::string::npos) << r.out;
  // The demo's report: every phase's section, the held-out images inline; each run folder has its own.
  const std::string report = read_file((dir / "runs/demo/report.html").string());
  for (const char* part : {"Phase 1", "Phase 2", "Phase 3", "Phase 4", "data:image/png;base64,", "<svg", "majority-answer baseline"})
    EXPECT_NE(report.find(part), std::string::npos) << part;
  for (const char* run : {"pretrain", "align", "instruct", "dpo"}) EXPECT_TRUE(fs::exists(dir / "runs/demo" / run / "report.html")) << run;
  fs::remove_all(dir);
}

// `tinyvlm perplexity` and `generate` on the original's .pt checkpoint give exactly what they give on the
// same weights as safetensors.
namespace {
const std::string kTinyFixtures = std::string(TV_FIXTURE_DIR);
const std::string kTinyPt = kTinyFixtures + "/torch/tiny_checkpoint.pt";
const std::string kTinySt = kTinyFixtures + "/model/tiny_params.safetensors";
const std::string kTinyConfig = kTinyFixtures + "/model/tiny_config.toml";
}  // namespace

TEST(CliTorchCheckpoint, PerplexityAndGenerateMatchSafetensors) {
  const std::string ids = (fs::temp_directory_path() / ("tinyvlm_cli_pt_" + std::to_string(getpid()) + ".txt")).string();
  tv::write_file_atomic(ids, "1 5 9 13 2 7 7 30 41 8 60 12\n");
  const std::string ppl = " --config " + kTinyConfig + " --ids-file " + ids + " --threads 1";
  Result a = run("perplexity --model " + kTinyPt + ppl, false), b = run("perplexity --model " + kTinySt + ppl, false);
  ASSERT_EQ(a.code, 0) << a.out;
  ASSERT_EQ(b.code, 0) << b.out;
  EXPECT_NE(a.out.find("\"tokens\":11"), std::string::npos) << a.out;
  EXPECT_EQ(a.out, b.out);

  const std::string gen =
      " --config " + kTinyConfig + " --prompt-ids \"4 8 15 16 23 42\" --max-tokens 8 --print-ids --threads 1";
  Result c = run("generate --model " + kTinyPt + gen, false), d = run("generate --model " + kTinySt + gen, false);
  ASSERT_EQ(c.code, 0) << c.out;
  ASSERT_EQ(d.code, 0) << d.out;
  EXPECT_FALSE(c.out.empty());
  EXPECT_EQ(c.out, d.out);

  // A .pt carries no config: the error says to pass one.
  Result e = run("generate --model " + kTinyPt + " --prompt-ids \"4 8\"", true);
  EXPECT_NE(e.code, 0);
  EXPECT_NE(e.out.find("--config"), std::string::npos) << e.out;
  fs::remove(ids);
}

// `tinyvlm inspect` lists the same tensors, with the same shapes, from a .pt and from safetensors.
TEST(CliInspect, ListsTensorsOfBothFormats) {
  Result pt = run("inspect " + kTinyPt + " --json", false), st = run("inspect " + kTinySt + " --json", false);
  ASSERT_EQ(pt.code, 0) << pt.out;
  ASSERT_EQ(st.code, 0) << st.out;
  const nlohmann::json jp = nlohmann::json::parse(pt.out), js = nlohmann::json::parse(st.out);
  EXPECT_EQ(jp["format"], "torch.save");
  EXPECT_EQ(js["format"], "safetensors");
  EXPECT_EQ(jp["metadata"]["epoch"], "3");
  std::map<std::string, nlohmann::json> pt_shapes;
  int64_t values = 0;
  for (const auto& t : jp["tensors"]) {
    pt_shapes[t["name"].get<std::string>()] = t["shape"];
    int64_t n = 1;
    for (int64_t d : t["shape"]) n *= d;
    values += n;
    EXPECT_EQ(t["dtype"], "F32") << t.dump();
  }
  EXPECT_EQ(jp["values"].get<int64_t>(), values);
  ASSERT_FALSE(js["tensors"].empty());
  for (const auto& t : js["tensors"]) {
    const std::string name = t["name"];
    ASSERT_TRUE(pt_shapes.count(name)) << name;
    EXPECT_EQ(pt_shapes[name], t["shape"]) << name;
  }
  Result q = run("inspect " + kTinyPt + " --match mha.w_q.weight");
  ASSERT_EQ(q.code, 0) << q.out;
  EXPECT_NE(q.out.find("decoder_layers.3.mha.w_q.weight"), std::string::npos) << q.out;
  EXPECT_EQ(q.out.find("w_k"), std::string::npos) << q.out;
  Result bad = run("inspect " + std::string(TV_FIXTURE_DIR) + "/model/tiny_config.toml");
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.out.find("neither a safetensors file"), std::string::npos) << bad.out;
}

// `tinyvlm convert` turns the original's .pt into safetensors that carry the config: perplexity then needs no
// --config and gives the same output.
TEST(CliConvert, PtToSafetensorsLoadsWithoutConfig) {
  const fs::path dir = fs::temp_directory_path() / ("tinyvlm_cli_convert_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string out = (dir / "tiny.safetensors").string(), ids = (dir / "ids.txt").string();
  tv::write_file_atomic(ids, "1 5 9 13 2 7 7 30 41 8 60 12\n");
  Result c = run("convert " + kTinyPt + " " + out + " --config " + kTinyConfig);
  ASSERT_EQ(c.code, 0) << c.out;
  Result a = run("perplexity --model " + out + " --ids-file " + ids + " --threads 1", false);
  Result b = run("perplexity --model " + kTinyPt + " --config " + kTinyConfig + " --ids-file " + ids + " --threads 1",
                 false);
  ASSERT_EQ(a.code, 0) << a.out;
  EXPECT_NE(a.out.find("\"tokens\":11"), std::string::npos) << a.out;
  EXPECT_EQ(a.out, b.out);
  const nlohmann::json j = nlohmann::json::parse(run("inspect " + out + " --json", false).out);
  EXPECT_EQ(j["tensors"].size(), nlohmann::json::parse(run("inspect " + kTinyPt + " --json", false).out)["tensors"].size());
  EXPECT_EQ(j["metadata"]["epoch"], "3");
  EXPECT_TRUE(j["metadata"].contains("config"));

  Result self = run("convert " + out + " " + out);
  EXPECT_EQ(self.code, 1);
  EXPECT_NE(self.out.find("is the input file"), std::string::npos) << self.out;
  Result sets = run("convert " + kTinyPt + " " + (dir / "x.safetensors").string() + " --set max_seq_len=8");
  EXPECT_EQ(sets.code, 1);
  EXPECT_NE(sets.out.find("--set needs --config"), std::string::npos) << sets.out;
  EXPECT_FALSE(fs::exists(dir / "x.safetensors"));
  // A config that does not describe the file's decoder is refused, not stored.
  Result wrong = run("convert " + kTinyPt + " " + (dir / "x.safetensors").string() + " --config " + kTinyConfig +
                     " --set n_layers=2");
  EXPECT_EQ(wrong.code, 1);
  EXPECT_NE(wrong.out.find("holds 4 decoder layers"), std::string::npos) << wrong.out;
  EXPECT_FALSE(fs::exists(dir / "x.safetensors"));
  Result nodir = run("convert " + kTinyPt + " " + (dir / "no" / "x.safetensors").string());
  EXPECT_EQ(nodir.code, 1);
  EXPECT_NE(nodir.out.find("does not exist"), std::string::npos) << nodir.out;
  fs::remove_all(dir);
}

// --weights bf16 and q8: perplexity close to fp32's, generate runs, bad names and a q8-incompatible model
// refused with messages that say why.
TEST(CliWeights, PerplexityAndGenerateInBf16AndQ8) {
  fs::path dir = fs::temp_directory_path() / ("tinyvlm_cli_weights_" + std::to_string(getpid()));
  fs::create_directories(dir);
  Config c = Config::from_string(kConfig);
  c.set_override("d_expert=32");  // every input a multiple of 32, as q8 needs
  c.set_override("d_ff_standard=64");
  ParamStore params;
  Llama model(ModelConfig::from(c), params);
  Rng rng(4);
  model.init_weights(rng);
  const std::string ckpt = (dir / "model.safetensors").string();
  save_model(ckpt, params, {{"config", c.to_toml()}});
  write_file_atomic((dir / "ids.txt").string(), "1 5 9 13 2 7 7 30 41 8 3 3\n");
  const std::string ppl = "perplexity --model " + ckpt + " --ids-file " + (dir / "ids.txt").string() + " --threads 1";
  std::map<std::string, double> ce;
  for (const char* w : {"fp32", "bf16", "q8"}) {
    Result r = run(ppl + " --weights " + w, false);
    ASSERT_EQ(r.code, 0) << w << ": " << r.out;
    ce[w] = nlohmann::json::parse(r.out.substr(r.out.find('{')))["cross_entropy"].get<double>();
  }
  EXPECT_NEAR(ce["bf16"], ce["fp32"], 0.01 * ce["fp32"]);
  EXPECT_NEAR(ce["q8"], ce["fp32"], 0.03 * ce["fp32"]);
  EXPECT_NE(ce["q8"], ce["fp32"]);  // converted, not ignored
  // Stored converted by `convert --weights q8`: loads as such (the same figures), a third of the bytes
  // of fp32 and more, and refuses to load as fp32 parameters (training).
  const std::string q8file = (dir / "q8.safetensors").string();
  Result cv = run("convert " + ckpt + " " + q8file + " --weights q8");
  ASSERT_EQ(cv.code, 0) << cv.out;
  EXPECT_LT(fs::file_size(q8file), fs::file_size(ckpt) / 2);
  Result stored = run("perplexity --model " + q8file + " --ids-file " + (dir / "ids.txt").string() + " --threads 1", false);
  ASSERT_EQ(stored.code, 0) << stored.out;
  EXPECT_EQ(nlohmann::json::parse(stored.out.substr(stored.out.find('{')))["cross_entropy"].get<double>(), ce["q8"]);
  {
    ParamStore fresh;
    Llama again(ModelConfig::from(c), fresh);
    try {
      fresh.load(*open_tensor_file(q8file));
      ADD_FAILURE() << "a q8 checkpoint loaded into fp32 parameters";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("cannot be trained"), std::string::npos) << e.what();
    }
  }
  Result again = run("perplexity --model " + q8file + " --ids-file " + (dir / "ids.txt").string() + " --weights bf16");
  EXPECT_NE(again.code, 0);
  EXPECT_NE(again.out.find("already q8"), std::string::npos) << again.out;
  EXPECT_NE(run("convert " + ckpt + " " + (dir / "part.safetensors").string() + " --weights q8 --match mha").code, 0);
  Result g = run("generate --model " + ckpt + " --prompt-ids \"4 8 15\" --max-tokens 5 --print-ids --threads 1 --weights q8");
  ASSERT_EQ(g.code, 0) << g.out;
  EXPECT_NE(g.out.find("decoder linear weights in q8"), std::string::npos) << g.out;
  Result bad = run(ppl + " --weights int4");
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.out.find("--weights must be fp32, bf16 or q8"), std::string::npos) << bad.out;
  // d_expert 24: the experts' down projections cannot be cut into blocks of 32.
  fs::create_directories(dir / "odd");
  const std::string odd = make_checkpoint(dir / "odd");
  Result q = run("perplexity --model " + odd + " --ids-file " + (dir / "ids.txt").string() + " --weights q8");
  EXPECT_NE(q.code, 0);
  EXPECT_NE(q.out.find("multiple of 32"), std::string::npos) << q.out;
  fs::remove_all(dir);
}
