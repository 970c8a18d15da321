// `tinyvlm eval`: the validation loss of a VLM checkpoint on caption (phase 2) or conversation (phase 3)
// data, or (phase 4) a policy's preference accuracy, rewards, margin and DPO loss against a reference, as one
// JSON object on stdout; with --per-sample, one JSON line per sample before it.
#include <CLI/CLI.hpp>

#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"
#include "train/dpo.h"
#include "train/evaluate.h"

namespace tv::cli {

void add_eval_command(CLI::App& app) {
  auto a = std::make_shared<EvalOptions>();
  auto d = std::make_shared<DpoEvalOptions>();  // --task dpo
  CLI::App* cmd = app.add_subcommand("eval", "Validation loss of a VLM checkpoint on captions or conversations, or "
                                             "preference accuracy against a reference (JSON)");
  cmd->add_option("--model", a->model, "VLM checkpoint (phase 2 or 3; tinyvlm's or the original's .pt with --config)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--config", a->config, "Config (default: the one stored in --model)")->check(CLI::ExistingFile);
  cmd->add_option("--tokenizer", a->tokenizer, "tokenizer.json (default: the one recorded in --model)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--task", a->task, "captions (phase-2 data and layout), instruct (phase 3) or dpo (phase 4)")
      ->required()
      ->check(CLI::IsMember({"captions", "instruct", "dpo"}));
  cmd->add_option("--ref", d->ref, "dpo: the reference checkpoint (the phase-3 model the policy started from)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--loss", d->loss, "dpo: sigmoid (default), ipo or hinge (config key dpo_loss)")
      ->check(CLI::IsMember({"sigmoid", "ipo", "hinge"}));
  cmd->add_option("--beta", d->beta, "dpo: the DPO temperature (config key dpo_beta, default 0.1)")->check(CLI::PositiveNumber);
  cmd->add_option("--data", a->data,
                  "captions: COCO captions JSON or JSONL; instruct: LLaVA-Instruct JSON or JSONL; dpo: preference "
                  "pairs (rlaif-v rows or {image, question, chosen, rejected} JSONL); any: Parquet (a .parquet file, "
                  "folder or glob)")
      ->required();
  cmd->add_option("--images", a->images, "Image folder (required for captions and instruct)");
  cmd->add_option("--max-samples", a->max_samples, "Evaluate only the first N samples")->check(CLI::PositiveNumber);
  cmd->add_flag("--per-sample", a->per_sample,
                "Also print one JSON line per sample (its loss and token count; dpo: the pair's four log-probs)");
  cmd->add_flag("--all-images", a->all_images, "instruct: keep every sample with an image, not only COCO ones");
  cmd->add_option("--cache-features", a->cache_features, "Frozen-feature cache folder (as for align/instruct)");
  cmd->add_option("--set", a->sets, "Override a config key, e.g. --set instruct_batch_size=4 (repeatable)");
  cmd->add_option("--threads", a->threads, "Worker threads (default: all cores)");
  cmd->callback([a, d] {
    if (a->task == "dpo") {
      d->model = a->model;
      d->config = a->config;
      d->tokenizer = a->tokenizer;
      d->data = a->data;
      d->images = a->images;
      d->cache_features = a->cache_features;
      d->sets = a->sets;
      d->max_samples = a->max_samples;
      d->per_sample = a->per_sample;
      d->threads = a->threads;
      DpoEvalReport r = evaluate_dpo(*d);
      if (d->per_sample)
        for (const std::string& line : r.per_sample_json()) std::printf("%s\n", line.c_str());
      std::printf("%s\n", r.summary_json().c_str());
      std::fflush(stdout);
      return;
    }
    if (a->images.empty()) fail("eval --task ", a->task, ": --images is required");
    if (!d->ref.empty() || !d->loss.empty() || d->beta > 0) fail("eval: --ref, --loss and --beta are for --task dpo");
    EvalReport r = evaluate(*a);
    if (a->per_sample)
      for (const std::string& line : r.per_sample_json()) std::printf("%s\n", line.c_str());
    std::printf("%s\n", r.summary_json().c_str());
    std::fflush(stdout);
  });
}

}  // namespace tv::cli
