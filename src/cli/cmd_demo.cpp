// `tinyvlm demo`: the whole pipeline on a built-in dataset, on the CPU, in minutes: generate the corpus,
// train a tokenizer, tokenize it into shards, pretrain a small decoder (phase 1) and generate from it
// with the KV cache; then draw a synthetic image-caption set, align a small vision tower to the decoder
// (phase 2) and caption held-out images; then instruction-tune on short conversations about the images
// (phase 3) and ask held-out images questions; then preference-tune (DPO, phase 4) on correct against wrong
// answers about the images. Each phase must lower its validation loss, the answers must beat always giving
// the most common training answer, and DPO must raise the held-out preference accuracy. report.html shows
// every phase's curves and held-out samples.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/demo_dpo.h"
#include "cli/train_options.h"
#include "cli/demo_report.h"
#include "core/parallel.h"
#include "data/demo_corpus.h"
#include "io/atomic_file.h"
#include "data/image.h"
#include "data/synthetic_images.h"
#include "model/checkpoint.h"
#include "model/chat_prompt.h"
#include "model/generator.h"
#include "model/vit.h"
#include "model/vlm.h"
#include "tokenizer/bpe.h"
#include "tokenizer/corpus.h"
#include "tokenizer/shards.h"
#include "tokenizer/trainer.h"
#include "train/align.h"
#include "train/instruct.h"
#include "train/pretrain.h"

namespace tv::cli {
namespace {
namespace fs = std::filesystem;

// A decoder with every layer kind (RoPE/NoPE, dense/MoE, GQA), small enough for a laptop core.
// vocab_size follows the trained tokenizer, as the original sets it from tokenizer.get_vocab_size().
const char* kDemoConfig = R"(# tinyvlm demo model: the original's keys, scaled down.
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
# vision: a small tower (random weights: no pretrained ViT ships with the demo) on 64x64 images
vision_hidden_size = 64
patch_size = 16
image_size = 64
vision_num_layers = 2
vision_num_heads = 4
vision_mlp_dim = 128
# phase 2
vlm_batch_size = 16
vlm_max_seq_len = 24
vlm_learning_rate = 2e-3
vlm_warmup_steps = 10
vlm_val_every = 25
vlm_val_batches = 4
vlm_log_interval = 10
# phase 3
instruct_batch_size = 16
instruct_max_seq_len = 64
instruct_learning_rate = 1e-3
instruct_warmup_steps = 10
instruct_val_every = 25
instruct_val_batches = 4
instruct_log_interval = 10
instruct_coco_only = false
)";

struct DemoArgs {
  std::string out = "runs/demo";
  int64_t steps = 300, documents = 4000, align_steps = 300, images = 400, instruct_steps = 150;
  int64_t dpo_steps = 100;
  bool check_answers = true;
  int threads = 0;
};

std::string banner(const std::string& s) { return "\n== " + s + " ==\n"; }

// "validation loss 6.5771 -> 0.6503 (it fell)", for the report.
std::string loss_change(double first, double best, bool fell) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "validation loss %.4f -> %.4f (%s)", first, best, fell ? "it fell" : "it did NOT fall");
  return buf;
}

// Captions one image with a phase-2 checkpoint: [projected vision tokens] then greedy text.
std::string caption_image(VisionLanguageModel& vlm, const tok::Tokenizer& tk, const std::string& image, int32_t eos) {
  GenerationOptions go;
  go.sampling.repetition_penalty = 1.2;
  go.max_new_tokens = 20;
  go.stop_ids = {eos};
  Generator g(vlm.llm(), go);
  GenerationState s = g.start(vlm.image_prefix_from_file(image), {});
  return tk.decode(g.run(s));
}

// Answers a question about one image with a phase-3 checkpoint: the original's prompt, <image> +
// encode(" USER: " + question + " ASSISTANT:"), then greedy text until EOS.
std::string answer_question(VisionLanguageModel& vlm, const tok::Tokenizer& tk, const std::string& image,
                            const std::string& question, int32_t eos) {
  GenerationOptions go;  // plain greedy: one-word answers
  go.max_new_tokens = 6;
  go.stop_ids = {eos};
  Generator g(vlm.llm(), go);
  GenerationState s = g.start(vlm.image_prefix_from_file(image), encode_question_prompt(tk, question));
  return tk.decode(g.run(s));
}

// The first word of an answer: the small model often runs on past its one-word answer instead of ending it.
std::string first_word(const std::string& s) {
  const size_t b = s.find_first_not_of(' ');
  if (b == std::string::npos) return "";
  const size_t e = s.find_first_of(" :.,\n", b);
  return s.substr(b, e == std::string::npos ? std::string::npos : e - b);
}

void run_demo(const DemoArgs& a) {
  using clock = std::chrono::steady_clock;
  auto t0 = clock::now();
  set_num_threads(a.threads);
  fs::create_directories(a.out);
  // Results go to stdout, progress to stderr (unbuffered): line-buffering stdout keeps the two in order
  // when both are piped to one file.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  DemoReport report((fs::path(a.out) / "report.html").string());

  std::fprintf(stderr, "%s", banner("1/10 corpus: built-in stories and scene descriptions").c_str());
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

  std::fprintf(stderr, "%s", banner("2/10 tokenizer: byte-level BPE, up to 2048 tokens").c_str());
  tok::TrainOptions topt;
  topt.vocab_size = 2048;
  topt.min_frequency = 2;
  std::vector<std::string_view> views(docs.begin(), docs.end());
  // The turns of phase 3's conversations, a few times each, so that " USER:", " ASSISTANT:" and the
  // questions get tokens of their own (the stories never say them).
  const std::vector<std::string> turns = synthetic_conversation_texts();
  for (int k = 0; k < 8; ++k) views.insert(views.end(), turns.begin(), turns.end());
  tok::Tokenizer tk = tok::train_bpe(views, topt);
  std::string tok_path = (fs::path(a.out) / "tokenizer.json").string();
  tk.save(tok_path);
  std::fprintf(stderr, "trained %zu merges (%d tokens; the corpus is small, so fewer than asked), saved %s\n",
               tk.num_merges(), int(tk.id_bound()), tok_path.c_str());

  std::fprintf(stderr, "%s", banner("3/10 tokenize into shards").c_str());
  std::string shard_dir = (fs::path(a.out) / "shards").string();
  tok::CorpusOptions copt;
  tok::TokenizeOptions kopt;
  kopt.progress = false;
  tok::TokenizeStats ts = tok::tokenize_corpus(tk, {corpus_path}, shard_dir, copt, kopt);
  std::fprintf(stderr, "%llu documents -> %llu tokens in %zu shard(s) under %s\n", (unsigned long long)ts.docs,
               (unsigned long long)ts.tokens, ts.shards.size(), shard_dir.c_str());

  std::fprintf(stderr, "%s", banner("4/10 phase 1: pretrain the decoder").c_str());
  std::string config_path = (fs::path(a.out) / "config.toml").string();
  write_file_atomic(config_path, "vocab_size = " + std::to_string(tk.id_bound()) + "\n" + kDemoConfig);
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

  std::fprintf(stderr, "%s", banner("5/10 generate from the best checkpoint (KV cache, greedy, repetition penalty 1.2)").c_str());
  auto m = load_llama(checkpoint_path(po.out, "best"), "");
  const int32_t eos = tk.token_to_id("</s>");
  {
    GenerationOptions go;
    go.sampling.repetition_penalty = 1.2;
    go.max_new_tokens = 48;
    go.stop_ids = {eos};
    Generator g(*m->model, go);
    DemoPhase p1{"Phase 1: pretraining the decoder", po.out, {}, "Generated from the best checkpoint (greedy, repetition penalty 1.2)", {}};
    p1.notes.push_back(loss_change(r.first_val, r.best_val, fell));
    for (const char* prompt : {"Once upon a time, there was a", "Mia had a red", "The picture shows a"}) {
      GenerationState s = g.start(Tensor(), tk.encode(prompt));
      const std::string text = tk.decode(g.run(s));
      std::printf("%s%s\n", prompt, text.c_str());
      report::Sample sample;  // free generation: no image, nothing expected
      sample.prompt = prompt;
      sample.answer = text;
      p1.samples.push_back(sample);
    }
    report.add(p1);
  }

  std::fprintf(stderr, "%s", banner("6/10 phase 2: align a vision tower to the decoder (projector only)").c_str());
  SyntheticCaptionSet set = make_synthetic_captions((fs::path(a.out) / "images").string(), int(a.images), 64, 2, 7);
  std::fprintf(stderr, "drew %zu images of coloured shapes with %zu captions\n", set.images.size(), set.texts.size());
  Config cfg = Config::from_file(config_path);
  const ModelConfig mc = ModelConfig::from(cfg);
  const VisionConfig vc = VisionConfig::from(cfg);
  std::string vit_path = (fs::path(a.out) / "vit.safetensors").string();
  {
    ParamStore tower_params;
    VisionTower tower(vc, tower_params);
    Rng tower_rng(11);
    tower.init_weights(tower_rng);
    save_safetensors(vit_path, tower_params.named_values());
    std::fprintf(stderr, "vision tower: %s, random weights (%s)\n", vc.describe().c_str(), vit_path.c_str());
  }
  AlignOptions ao;
  ao.config = config_path;
  ao.llm = checkpoint_path(po.out, "best");
  ao.vit = vit_path;
  ao.tokenizer = tok_path;
  ao.captions = set.captions;
  ao.images = (fs::path(a.out) / "images").string();
  ao.out = (fs::path(a.out) / "align").string();
  ao.cache_features = (fs::path(a.out) / "features").string();
  ao.steps = a.align_steps;
  ao.threads = -1;
  fs::remove_all(ao.out);
  AlignResult ar = align(ao);
  bool fell2 = ar.has_val && ar.best_val < ar.first_val;
  std::fprintf(stderr, "phase-2 validation loss %.4f -> %.4f: %s\n", ar.first_val, ar.best_val,
               fell2 ? "it fell" : "it did NOT fall");

  std::fprintf(stderr, "%s", banner("7/10 caption images with the aligned model").c_str());
  {
    ParamStore vp;
    VisionLanguageModel vlm(mc, vc, vp);
    SafetensorsFile best(checkpoint_path(ao.out, "best"));
    vp.load(best);
    DemoPhase p2{"Phase 2: aligning the vision tower (projector only)", ao.out, {}, "Held-out images captioned", {}};
    p2.notes.push_back(loss_change(ar.first_val, ar.best_val, fell2));
    const size_t per_image = set.images.empty() ? 0 : set.texts.size() / set.images.size();
    for (size_t i = 0; i < 3 && i < set.images.size(); ++i) {
      const size_t k = set.images.size() - 1 - i;
      const std::string& img = set.images[k];
      std::string expected;  // the image's training-style captions
      for (size_t c = 0; c < per_image; ++c) expected += (c ? " | " : "") + set.texts[k * per_image + c];
      const std::string caption = caption_image(vlm, tk, img, eos);
      std::printf("%s: %s  expected: %s\n", fs::path(img).filename().c_str(), caption.c_str(), expected.c_str());
      p2.samples.push_back(demo_image_sample(img, "", expected, caption));
    }
    report.add(p2);
  }
  std::fprintf(stderr, "%s", banner("8/10 phase 3: instruction-tune the projector and decoder on conversations").c_str());
  // The held-out images are phase 2's validation images (the last vlm_val_fraction = 5%): neither phase
  // trains on them.
  const size_t held_out = std::max<size_t>(1, size_t(double(set.images.size()) * 0.05));
  const size_t n_train_images = set.images.size() - held_out;
  SyntheticConversationSet convs =
      make_synthetic_conversations(set, (fs::path(a.out) / "images").string(), n_train_images, 3, 17);
  InstructOptions io;
  io.model = checkpoint_path(ao.out, "best");
  io.data = convs.conversations;
  io.images = (fs::path(a.out) / "images").string();
  io.out = (fs::path(a.out) / "instruct").string();
  io.cache_features = ao.cache_features;
  io.steps = a.instruct_steps;
  io.threads = -1;
  fs::remove_all(io.out);
  InstructResult ir = instruct(io);
  bool fell3 = ir.has_val && ir.best_val < ir.first_val;
  std::fprintf(stderr, "phase-3 validation loss %.4f -> %.4f: %s\n", ir.first_val, ir.best_val,
               fell3 ? "it fell" : "it did NOT fall");

  std::fprintf(stderr, "%s", banner("9/10 ask held-out images questions").c_str());
  bool beat = false;
  {
    ParamStore vp;
    VisionLanguageModel vlm(mc, vc, vp);
    SafetensorsFile best(checkpoint_path(io.out, "best"));
    vp.load(best);
    // The majority baseline: per kind of question, the answer most often given in training.
    std::map<std::string, std::map<std::string, int>> counts;
    for (size_t i = 0; i < n_train_images; ++i)
      for (const SyntheticQuestion& q : synthetic_questions(set.scenes[i])) counts[q.kind][q.answer]++;
    std::map<std::string, std::string> majority;
    for (const auto& [kind, c] : counts)
      majority[kind] = std::max_element(c.begin(), c.end(), [](auto& x, auto& y) { return x.second < y.second; })->first;
    int asked = 0, right = 0, base = 0;
    DemoPhase p3{"Phase 3: instruction tuning (projector and decoder)", io.out, {}, "Held-out images asked every question", {}};
    std::map<std::string, std::pair<int, int>> by_kind;  // right, asked
    for (size_t i = n_train_images; i < set.images.size(); ++i)
      for (const SyntheticQuestion& q : synthetic_questions(set.scenes[i])) {
        const std::string got = answer_question(vlm, tk, set.images[i], q.question, eos);
        const bool ok = first_word(got) == q.answer;
        right += ok;
        base += majority[q.kind] == q.answer;
        ++asked;
        by_kind[q.kind].first += ok;
        by_kind[q.kind].second += 1;
        if (i < n_train_images + 6) p3.samples.push_back(demo_image_sample(set.images[i], q.question, q.answer, got, ok));
        if (i < n_train_images + 3)
          std::printf("%s: %s  expected: %s  answer: %s%s\n", fs::path(set.images[i]).filename().c_str(), q.question.c_str(),
                      q.answer.c_str(), got.c_str(), ok ? "" : "  (wrong)");
      }
    std::string kinds;
    for (const auto& [kind, rk] : by_kind) kinds += str_cat(kinds.empty() ? "" : ", ", kind, " ", rk.first, "/", rk.second);
    const double acc = asked ? double(right) / asked : 0, base_acc = asked ? double(base) / asked : 0;
    std::printf("accuracy (first word of the answer) on %zu held-out images: %d/%d = %.1f%% (%s); majority-answer "
                "baseline %.1f%%\n", held_out, right,
                asked, 100 * acc, kinds.c_str(), 100 * base_acc);
    beat = acc > base_acc;
    p3.notes.push_back(loss_change(ir.first_val, ir.best_val, fell3));
    p3.notes.push_back(str_cat("accuracy (first word of the answer) on ", held_out, " held-out images: ", right, "/", asked,
                               " (", kinds, "); majority-answer baseline ", base, "/", asked));
    report.add(p3);
  }
  std::fprintf(stderr, "%s", banner("10/10 phase 4: preference-tune (DPO) on correct vs wrong answers about the images").c_str());
  DemoDpoOptions dpo_opt;
  dpo_opt.out = a.out;
  dpo_opt.instruct_checkpoint = checkpoint_path(io.out, "best");
  dpo_opt.images = io.images;
  dpo_opt.cache_features = ao.cache_features;
  dpo_opt.set = &set;
  dpo_opt.train_images = n_train_images;
  dpo_opt.steps = a.dpo_steps;
  const DemoDpoResult dpo_r = run_demo_dpo(dpo_opt);
  for (const DemoDpoExample& e : dpo_r.examples)
    std::printf("%s: %s  chosen: %s  rejected: %s  log p(chosen) - log p(rejected): %.2f -> %.2f\n", e.image.c_str(),
                e.question.c_str(), e.chosen.c_str(), e.rejected.c_str(), e.before, e.after);
  std::printf("held-out preference accuracy (%lld pairs on %zu held-out images): %.1f%% before DPO -> %.1f%% after "
              "(reward accuracy against the reference %.1f%%; %lld training pairs, %lld steps, %.0f s)\n",
              (long long)dpo_r.held_out_pairs, held_out, 100 * dpo_r.before, 100 * dpo_r.after, 100 * dpo_r.reward_accuracy,
              (long long)dpo_r.train_pairs, (long long)dpo_r.steps, dpo_r.seconds);
  {
    DemoPhase p4{"Phase 4: preference tuning (DPO)", dpo_r.run_dir, {},
                 "Held-out pairs: log p(chosen) - log p(rejected), phase 3 -> DPO", {}};
    p4.notes.push_back(str_cat("held-out preference accuracy ", 100 * dpo_r.before, "% -> ", 100 * dpo_r.after, "% (",
                               dpo_r.held_out_pairs, " pairs)"));
    for (const DemoDpoExample& e : dpo_r.examples)
      p4.samples.push_back(demo_image_sample((fs::path(io.images) / e.image).string(), e.question,
                                             "chosen: " + e.chosen + " / rejected: " + e.rejected,
                                             str_cat(e.before, " -> ", e.after), e.after > 0));
    report.add(p4);
  }
  double secs = std::chrono::duration<double>(clock::now() - t0).count();
  std::fprintf(stderr, "\ndemo finished in %.0f s; everything is under %s\n", secs, a.out.c_str());
  auto verdict = [](bool ok) { return ok ? "fell" : "did NOT fall"; };
  report.set_summary({str_cat("The pipeline end to end on the built-in data in ", int(secs + 0.5), " s. Validation loss: phase 1 ",
                              verdict(fell), ", phase 2 ", verdict(fell2), ", phase 3 ", verdict(fell3),
                              "; the phase-3 answers ", beat ? "beat" : "did NOT beat", " the majority-answer baseline; DPO ",
                              dpo_r.raised() ? "raised" : "did NOT raise", " the held-out preference accuracy (",
                              int(100 * dpo_r.before + 0.5), "% -> ", int(100 * dpo_r.after + 0.5), "%).")});
  std::fprintf(stderr, "the report: %s\n", report.path().c_str());
  if (!fell) fail("the demo's phase-1 validation loss did not fall");
  if (!fell2) fail("the demo's phase-2 validation loss did not fall");
  if (!fell3) fail("the demo's phase-3 validation loss did not fall");
  if (!beat && a.check_answers) fail("the demo's phase-3 answers did not beat the majority-answer baseline");
  if (!dpo_r.raised() && a.check_answers) fail("the demo's DPO did not raise the held-out preference accuracy");
}

}  // namespace

void add_demo_command(CLI::App& app) {
  auto a = std::make_shared<DemoArgs>();
  CLI::App* cmd = app.add_subcommand("demo", "Run the pipeline end to end on a built-in dataset (CPU, minutes)");
  cmd->add_option("--out", a->out, "Output directory")->capture_default_str();
  cmd->add_option("--steps", a->steps, "Pretraining steps")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--documents", a->documents, "Corpus size in documents")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--align-steps", a->align_steps, "Phase-2 steps")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--images", a->images, "Synthetic images for phases 2 and 3")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--instruct-steps", a->instruct_steps, "Phase-3 steps")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--dpo-steps", a->dpo_steps, "Phase-4 (DPO) steps")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_flag("!--no-answer-check", a->check_answers,
                "Do not fail when the answers do not beat the majority baseline or DPO does not raise the held-out "
                "preference accuracy (for scaled-down runs)");
  add_threads_option(cmd, a->threads);
  cmd->callback([a] { run_demo(*a); });
}

}  // namespace tv::cli
