// `tinyvlm demo`: the whole pipeline on a built-in corpus, on the CPU, in minutes: generate the corpus,
// train a tokenizer, tokenize it into shards, pretrain a small decoder (phase 1), check that the
// validation loss fell, and generate from the best checkpoint with the KV cache.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/parallel.h"
#include "data/demo_corpus.h"
#include "io/atomic_file.h"
#include "model/checkpoint.h"
#include "model/sampler.h"
#include "tokenizer/bpe.h"
#include "tokenizer/corpus.h"
#include "tokenizer/shards.h"
#include "tokenizer/trainer.h"
#include "train/pretrain.h"

namespace tv::cli {
namespace {
namespace fs = std::filesystem;

// A decoder with every layer kind (RoPE/NoPE, dense/MoE, GQA), small enough for a laptop core.
const char* kDemoConfig = R"(# tinyvlm demo model: the original's keys, scaled down.
vocab_size = 2048
d_model = 128
n_heads = 4
n_kv_heads = 2
n_layers = 4
max_seq_len = 128
num_experts = 4
num_experts_per_tok = 2
moe_layer_freq = 2
d_expert = 128
d_ff_standard = 256
rope_layers_ratio = 0.75
rope_theta = 10000
chunk_size = 32
batch_size = 8
batches_per_epoch = 100
# phase-1 training keys (tinyvlm's; the original keeps them on its command line)
lr = 2e-3
weight_decay = 0.1
warmup_steps = 20
val_every = 50
val_batches = 8
log_interval = 10
)";

struct DemoArgs {
  std::string out = "runs/demo";
  int64_t steps = 300, documents = 4000;
  int threads = 0;
};

std::string banner(const std::string& s) { return "\n== " + s + " ==\n"; }

void run_demo(const DemoArgs& a) {
  using clock = std::chrono::steady_clock;
  auto t0 = clock::now();
  set_num_threads(a.threads);
  fs::create_directories(a.out);

  std::fprintf(stderr, "%s", banner("1/5 corpus: built-in stories and scene descriptions").c_str());
  std::vector<std::string> docs = demo_documents(a.documents, 2024);
  std::string corpus_path = (fs::path(a.out) / "corpus.jsonl").string();
  {
    AtomicFile f(corpus_path);
    size_t bytes = 0;
    for (const auto& d : docs) {
      f.write(nlohmann::json{{"text", d}}.dump() + "\n");
      bytes += d.size();
    }
    f.commit();
    std::fprintf(stderr, "wrote %zu documents (%.1f KB of text) to %s\n", docs.size(), double(bytes) / 1024, corpus_path.c_str());
  }

  std::fprintf(stderr, "%s", banner("2/5 tokenizer: byte-level BPE, 2048 tokens").c_str());
  tok::TrainOptions topt;
  topt.vocab_size = 2048;
  topt.min_frequency = 2;
  std::vector<std::string_view> views(docs.begin(), docs.end());
  tok::Tokenizer tk = tok::train_bpe(views, topt);
  std::string tok_path = (fs::path(a.out) / "tokenizer.json").string();
  tk.save(tok_path);
  std::fprintf(stderr, "trained %zu merges, saved %s\n", tk.num_merges(), tok_path.c_str());

  std::fprintf(stderr, "%s", banner("3/5 tokenize into shards").c_str());
  std::string shard_dir = (fs::path(a.out) / "shards").string();
  tok::CorpusOptions copt;
  tok::TokenizeOptions kopt;
  kopt.progress = false;
  tok::TokenizeStats ts = tok::tokenize_corpus(tk, {corpus_path}, shard_dir, copt, kopt);
  std::fprintf(stderr, "%llu documents -> %llu tokens in %zu shard(s) under %s\n", (unsigned long long)ts.docs,
               (unsigned long long)ts.tokens, ts.shards.size(), shard_dir.c_str());

  std::fprintf(stderr, "%s", banner("4/5 phase 1: pretrain the decoder").c_str());
  std::string config_path = (fs::path(a.out) / "config.toml").string();
  write_file_atomic(config_path, kDemoConfig);
  PretrainOptions po;
  po.config = config_path;
  po.data = {shard_dir};
  po.tokenizer = tok_path;
  po.out = (fs::path(a.out) / "pretrain").string();
  po.steps = a.steps;
  po.threads = -1;
  po.min_vocab = tk.id_bound();
  fs::remove_all(po.out);  // a fresh run each time
  TrainResult r = pretrain(po);
  bool fell = r.has_val && r.best_val < r.first_val;
  std::fprintf(stderr, "validation loss %.4f -> %.4f: %s\n", r.first_val, r.best_val, fell ? "it fell" : "it did NOT fall");

  std::fprintf(stderr, "%s", banner("5/5 generate from the best checkpoint (KV cache, greedy, repetition penalty 1.2)").c_str());
  auto m = load_llama(checkpoint_path(po.out, "best"), "");
  SamplerOptions so;
  so.repetition_penalty = 1.2;
  Rng rng(0);
  for (const char* prompt : {"Once upon a time, there was a", "Mia had a red", "The picture shows a"}) {
    std::vector<int32_t> ids = tk.encode(prompt);
    KVCache cache = m->model->make_cache(int64_t(ids.size()) + 48);
    Tensor logits = m->model->forward_cached(m->model->embed(Tensor::from_i32({int64_t(ids.size())}, ids)), cache);
    std::vector<int32_t> seen = ids, out;
    for (int i = 0; i < 48; ++i) {
      std::vector<float> row(logits.data<float>(), logits.data<float>() + logits.size(1));
      int32_t next = sample_next(std::move(row), seen, so, rng);
      if (next == tk.token_to_id("</s>")) break;
      out.push_back(next);
      seen.push_back(next);
      logits = m->model->forward_cached(m->model->embed(Tensor::from_i32({1}, {next})), cache);
    }
    std::printf("%s%s\n", prompt, tk.decode(out).c_str());
  }
  double secs = std::chrono::duration<double>(clock::now() - t0).count();
  std::fprintf(stderr, "\ndemo finished in %.0f s; everything is under %s\n", secs, a.out.c_str());
  if (!fell) fail("the demo's validation loss did not fall");
}

}  // namespace

void add_demo_command(CLI::App& app) {
  auto a = std::make_shared<DemoArgs>();
  CLI::App* cmd = app.add_subcommand("demo", "Run the pipeline end to end on a built-in dataset (CPU, minutes)");
  cmd->add_option("--out", a->out, "Output directory")->capture_default_str();
  cmd->add_option("--steps", a->steps, "Pretraining steps")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--documents", a->documents, "Corpus size in documents")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--threads", a->threads, "Worker threads (default: all cores)");
  cmd->callback([a] { run_demo(*a); });
}

}  // namespace tv::cli
