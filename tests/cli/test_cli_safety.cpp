// The command line never loses work and checks every input: a finished run is refused without --resume
// or --overwrite, runs are self-contained (the tokenizer travels in the checkpoint), numeric options are
// range-checked, config typos are caught with a suggestion, invalid UTF-8 and oversized tokenizers are
// refused the same way everywhere, long prompts are cut with a message, and errors name the user's path.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "io/atomic_file.h"
#include "io/safetensors.h"

namespace fs = std::filesystem;

namespace {

struct Result {
  int code = -1;
  std::string out;
};

Result run(const std::string& args) {
  std::string cmd = std::string(TV_TINYVLM_BIN) + " " + args + " 2>&1";
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

const std::string kTokenizer = std::string(TV_FIXTURE_DIR) + "/tokenizer/hf_seen_tokenizer.json";   // ids < 600
const std::string kBigTokenizer = std::string(TV_FIXTURE_DIR) + "/tokenizer/hf_tokenizer.json";     // ids < 4000

const char* kConfig = R"(vocab_size = 600
d_model = 32
n_heads = 4
n_kv_heads = 2
n_layers = 2
max_seq_len = 16
num_experts = 2
num_experts_per_tok = 1
d_expert = 16
d_ff_standard = 24
chunk_size = 8
batch_size = 2
val_fraction = 0.2
val_every = 2
)";

struct Fixture {
  fs::path dir;
  std::string config, data;
  explicit Fixture(const std::string& name) {
    dir = fs::temp_directory_path() / ("tinyvlm_cli_safety_" + name + "_" + std::to_string(getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    config = (dir / "config.toml").string();
    data = (dir / "data.txt").string();
    tv::write_file_atomic(config, kConfig);
    std::string text;
    for (int i = 0; i < 60; ++i) text += "the cat sat on the mat and the dog ran in the sun. ";
    tv::write_file_atomic(data, text);
  }
  ~Fixture() { fs::remove_all(dir); }
  std::string pretrain(const std::string& out, const std::string& extra) const {
    const std::string threads = extra.find("--threads") == std::string::npos ? " --threads 1 " : " ";
    return "pretrain --config " + config + " --data " + data + " --tokenizer " + kTokenizer + " --out " + out + threads +
           extra;
  }
};

}  // namespace

TEST(CliSafety, AFinishedRunIsRefusedThenMovedAsideWithOverwrite) {
  Fixture f("refuse");
  const std::string out = (f.dir / "run").string();
  Result first = run(f.pretrain(out, "--steps 4"));
  ASSERT_EQ(first.code, 0) << first.out;
  const auto best_size = fs::file_size(fs::path(out) / "best.safetensors");
  const std::string best_step = tv::SafetensorsFile(out + "/best.safetensors").metadata().at("step");
  Result again = run(f.pretrain(out, "--steps 2"));
  EXPECT_NE(again.code, 0);
  EXPECT_NE(again.out.find("already holds a run"), std::string::npos) << again.out;
  EXPECT_EQ(tv::SafetensorsFile(out + "/best.safetensors").metadata().at("step"), best_step);
  Result over = run(f.pretrain(out, "--steps 2 --overwrite"));
  ASSERT_EQ(over.code, 0) << over.out;
  EXPECT_NE(over.out.find("moved to"), std::string::npos) << over.out;
  bool found = false;
  for (const auto& e : fs::directory_iterator(out))
    if (e.path().filename().string().rfind("previous-", 0) == 0) {
      found = true;
      EXPECT_EQ(fs::file_size(e.path() / "best.safetensors"), best_size);
    }
  EXPECT_TRUE(found);
}

TEST(CliSafety, SigtermCheckpointsAndExits143) {
  Fixture f("sigterm");
  const std::string out = (f.dir / "run").string();
  std::string cmd = std::string(TV_TINYVLM_BIN) + " " + f.pretrain(out, "--steps 100000") + " 2>" + (f.dir / "err.txt").string();
  pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), (char*)nullptr);
    _exit(127);
  }
  // Wait for training to be under way (the metrics file gets its first training line).
  for (int i = 0; i < 600; ++i) {
    std::ifstream m(fs::path(out) / "metrics.jsonl");
    std::string all((std::istreambuf_iterator<char>(m)), std::istreambuf_iterator<char>());
    if (all.find("\"train\"") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 143);
  std::string err = tv::read_file((f.dir / "err.txt").string());
  EXPECT_NE(err.find("saved " + out + "/last"), std::string::npos) << err;
  EXPECT_TRUE(fs::exists(fs::path(out) / "last.state.safetensors"));
  const int64_t step = std::stoll(tv::SafetensorsFile(out + "/last.safetensors").metadata().at("step"));
  Result resume = run(f.pretrain(out, "--steps 100000 --resume --stop-after " + std::to_string(step + 1)));
  EXPECT_EQ(resume.code, 0) << resume.out;
  EXPECT_NE(resume.out.find("resumed"), std::string::npos) << resume.out;
}

TEST(CliSafety, ARunFolderIsSelfContained) {
  Fixture f("moved");
  const std::string out = (f.dir / "run").string();
  ASSERT_EQ(run(f.pretrain(out, "--steps 2")).code, 0);
  tv::SafetensorsFile best(out + "/best.safetensors");
  EXPECT_EQ(best.metadata().count("tokenizer_json"), 1u);
  EXPECT_FALSE(fs::path(best.metadata().at("tokenizer")).is_absolute()) << best.metadata().at("tokenizer");
  // Moved elsewhere, with the tokenizer it named gone from its place: generate still works.
  const fs::path moved = f.dir / "elsewhere" / "run";
  fs::create_directories(moved.parent_path());
  fs::rename(out, moved);
  Result g = run("generate --model " + (moved / "best.safetensors").string() + " --prompt 'the cat' --max-tokens 3 --threads 1");
  EXPECT_EQ(g.code, 0) << g.out;
}

TEST(CliSafety, InputsAreChecked) {
  Fixture f("inputs");
  const std::string out = (f.dir / "run").string();
  auto refused = [&](const std::string& args, const std::string& expect) {
    Result r = run(args);
    EXPECT_NE(r.code, 0) << args;
    EXPECT_NE(r.out.find(expect), std::string::npos) << args << "\n" << r.out;
    EXPECT_EQ(r.out.find("json.exception"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("filesystem error"), std::string::npos) << r.out;
  };
  refused(f.pretrain(out, "--steps 0"), "--steps: Value 0 not in range");
  refused(f.pretrain(out, "--steps -5"), "--steps: Value -5 not in range");
  refused(f.pretrain(out, "--threads 1000"), "--threads: Value 1000 not in range");
  refused(f.pretrain(out, "--threads -1"), "--threads: Value -1 not in range");
  refused(f.pretrain(out, "--threads 0"), "--threads: Value 0 not in range");
  const long cores = sysconf(_SC_NPROCESSORS_ONLN);
  if (cores < 256) {  // more threads than cores: allowed, with a warning
    Result many = run(f.pretrain((f.dir / "many").string(), "--steps 1 --threads " + std::to_string(cores + 1)));
    EXPECT_EQ(many.code, 0) << many.out;
    EXPECT_NE(many.out.find("more than the " + std::to_string(cores) + " cores"), std::string::npos) << many.out;
  }
  refused(f.pretrain(out, "--set lrr=5"), "did you mean 'lr'");
  refused(f.pretrain(out, "--set lr=inf"), "--set lr=inf");
  tv::write_file_atomic(f.config, std::string(kConfig) + "wieght_decay = 5.0\n");
  refused(f.pretrain(out, ""), "config.toml:15: unknown key 'wieght_decay' (did you mean 'weight_decay'?)");
  tv::write_file_atomic(f.config, kConfig);
  refused("pretrain --config " + f.config + " --data " + f.data + " --tokenizer " + f.dir.string() + " --out " + out,
          f.dir.string() + ": is a folder");
  refused("pretrain --config " + f.config + " --data " + f.data + " --tokenizer " + kTokenizer + " --out /proc/x --steps 1",
          "/proc/x");
  // Invalid UTF-8 is refused by pretrain as tokenize refuses it.
  tv::write_file_atomic((f.dir / "bad.txt").string(), "good text \xff\xfe more");
  refused("pretrain --config " + f.config + " --data " + (f.dir / "bad.txt").string() + " --tokenizer " + kTokenizer +
              " --out " + out + " --steps 1",
          "bad.txt: byte 10: invalid UTF-8");
  EXPECT_FALSE(fs::exists(fs::path(out) / "metrics.jsonl"));

  ASSERT_EQ(run(f.pretrain(out, "--steps 1")).code, 0);
  const std::string model = "--model " + out + "/best.safetensors --threads 1 ";
  refused("generate " + model + "--prompt-ids '1 2' --top-k -3", "--top-k must be >= 0 (0 = off), got -3");
  refused("generate " + model + "--prompt-ids '1 2' --repetition-penalty 0", "--repetition-penalty must be a finite number > 0 (1 = off), got 0");
  refused("generate --model " + out + "/best.safetensors --threads 5000 --prompt-ids '1 2'", "--threads: Value 5000 not in range");
  refused("generate " + model + "--prompt \"$(printf 'a\\377b')\"", "--prompt: byte 1: invalid UTF-8");
  tv::write_file_atomic((f.dir / "bad_ppl.txt").string(), "abc \xc3");
  refused("perplexity " + model + "--text-file " + (f.dir / "bad_ppl.txt").string(), "bad_ppl.txt: byte 4: invalid UTF-8");
  refused("generate " + model + "--prompt 'the cat' --tokenizer " + kBigTokenizer, "vocab_size");
  refused("perplexity " + model + "--text-file " + f.data + " --tokenizer " + kBigTokenizer, "vocab_size");
  std::string ids;
  for (int i = 0; i < 40; ++i) ids += "5 ";
  Result cut = run("generate " + model + "--prompt-ids '" + ids + "' --max-tokens 1");
  EXPECT_EQ(cut.code, 0) << cut.out;
  EXPECT_NE(cut.out.find("keeping its last 16"), std::string::npos) << cut.out;
  refused("encode-image --image " + std::string(TV_FIXTURE_DIR) + "/images/small.jpg --pixels-only --out " + (f.dir / "nodir" / "x.safetensors").string(),
          (f.dir / "nodir").string() + " does not exist");
}

TEST(CliSafety, AFailedTokenizeKeepsTheOldShards) {
  Fixture f("tokenize");
  const std::string shards = (f.dir / "shards").string();
  Result ok = run("tokenize --tokenizer " + kTokenizer + " --out " + shards + " --input " + f.data);
  ASSERT_EQ(ok.code, 0) << ok.out;
  const auto size = fs::file_size(fs::path(shards) / "shard_00000.bin");
  tv::write_file_atomic((f.dir / "bad.txt").string(), "fine\n\xff broken");
  Result bad = run("tokenize --tokenizer " + kTokenizer + " --out " + shards + " --input " + (f.dir / "bad.txt").string());
  EXPECT_NE(bad.code, 0);
  ASSERT_TRUE(fs::exists(fs::path(shards) / "shard_00000.bin"));
  EXPECT_EQ(fs::file_size(fs::path(shards) / "shard_00000.bin"), size);
  EXPECT_FALSE(fs::exists(shards + ".partial"));
}
