// A tiny phase-2 world shared by the alignment tests, built once per process in a temporary folder:
// synthetic PNGs of coloured shapes with captions (plus one missing and one corrupt image), a byte-level
// BPE tokenizer trained on the captions, a random tiny phase-1 decoder checkpoint, and the tiny torchvision
// tower of tests/fixtures/vlm.
#pragma once
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "data/synthetic_images.h"
#include "io/atomic_file.h"
#include "model/config.h"
#include "model/llama.h"
#include "tokenizer/trainer.h"
#include "train/trainer.h"

namespace tv::align_test {

namespace fs = std::filesystem;

struct World {
  fs::path dir;
  std::string images, captions, tokenizer, llm, config, vit;
  int64_t vocab = 0;
  int runs = 0;

  std::string fresh(const std::string& name) {  // a new, empty folder for one run
    fs::path p = dir / (name + "_" + std::to_string(++runs));
    fs::remove_all(p);
    return p.string();
  }

  World() {
    dir = fs::temp_directory_path() / ("tinyvlm_align_test_" + std::to_string(getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    images = (dir / "images").string();
    SyntheticCaptionSet set = make_synthetic_captions(images, 24, 40, 2, 5);
    // Two unreadable images first, so they fall in the training split.
    std::ofstream(fs::path(images) / "corrupt.png") << "this is not a PNG file";
    captions = (dir / "captions.jsonl").string();
    std::string lines = "{\"image\": \"missing.jpg\", \"caption\": \"a picture that is not there\"}\n"
                        "{\"image\": \"corrupt.png\", \"caption\": \"a damaged picture\"}\n" +
                        read_file(set.captions);
    write_file_atomic(captions, lines);

    tok::TrainOptions to;
    to.vocab_size = 300;
    to.threads = 1;
    std::vector<std::string_view> texts(set.texts.begin(), set.texts.end());
    tok::Tokenizer tk = tok::train_bpe(texts, to);
    tokenizer = (dir / "tokenizer.json").string();
    tk.save(tokenizer);
    vocab = tk.id_bound();

    config = (dir / "config.toml").string();
    write_file_atomic(config, "vocab_size = " + std::to_string(vocab) + R"(
d_model = 32
n_heads = 4
n_kv_heads = 2
n_layers = 4
max_seq_len = 32
num_experts = 4
num_experts_per_tok = 2
moe_layer_freq = 2
d_expert = 24
d_ff_standard = 40
rope_layers_ratio = 0.75
rope_theta = 10000
chunk_size = 8
vision_hidden_size = 16
patch_size = 16
image_size = 32
vision_num_layers = 2
vision_num_heads = 2
vision_mlp_dim = 32
vlm_batch_size = 4
vlm_max_seq_len = 12
vlm_learning_rate = 0.003
vlm_epochs = 2
vlm_val_batches = 3
vlm_val_fraction = 0.2
vlm_log_interval = 1000
vlm_image_workers = 2
)");
    // A random phase-1 decoder saved as `tinyvlm pretrain` saves it.
    Config cfg = Config::from_file(config);
    ParamStore params;
    Llama model(ModelConfig::from(cfg), params);
    Rng rng(99);
    model.init_weights(rng);
    llm = (dir / "phase1.safetensors").string();
    save_model(llm, params, {{"config", cfg.to_toml()}, {"tokenizer", tokenizer}, {"phase", "pretrain"}});
    vit = std::string(TV_FIXTURE_DIR) + "/vlm/vit_torchvision.safetensors";
  }
  ~World() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

inline World& world() {
  static World w;
  return w;
}

// step -> loss of the training lines of a run's metrics.jsonl (a resumed run appends to the same file).
inline std::map<int64_t, double> train_losses(const std::string& out_dir) {
  std::map<int64_t, double> m;
  std::ifstream in(fs::path(out_dir) / "metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    if (j.value("split", "") == "train") m[j["step"].get<int64_t>()] = j["loss"].get<double>();
  }
  return m;
}

}  // namespace tv::align_test
