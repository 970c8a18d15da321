// The vision-language model of phases 2-4 (docs/spec.md section 4): the frozen vision tower, the trainable
// projector and the decoder with `<image>` appended to its vocabulary. The decoder input is
// [projected vision tokens] ++ embed(ids[:, 1:]) (ids[:, 0] is always `<image>`), positions count from
// the first vision token, and the logit at position P - 1 + t predicts ids[t + 1] (P vision tokens).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"
#include "model/config.h"
#include "model/llama.h"
#include "model/params.h"
#include "model/vit.h"

namespace tv {

class TensorSource;

class VisionLanguageModel {
 public:
  // `text` is the phase-1 decoder's config (vocab_size without `<image>`); the decoder is built with one
  // more vocabulary row. Names: <prefix>llm.*, <prefix>vision_encoder.* (tower and proj.0/proj.2).
  // The tower is frozen from the start (no gradient memory).
  VisionLanguageModel(const ModelConfig& text, const VisionConfig& vision, ParamStore& store,
                      const std::string& prefix = "");

  Llama& llm() { return *llm_; }
  VisionTower& tower() { return *tower_; }
  Projector& projector() { return *proj_; }
  const std::string& prefix() const { return prefix_; }
  int32_t image_token_id() const { return int32_t(text_vocab_); }  // = the text vocab_size (32000)
  int64_t num_vision_tokens() const { return tower_->config().num_patches(); }
  int64_t d_model() const { return llm_->config().d_model; }

  // The decoder from a phase-1 checkpoint (tinyvlm's or the original's names, at "", "llm." or "vlm.llm."):
  // when its vocabulary lacks `<image>`, the new embedding row is drawn N(0, D^-1/2) and the new output row
  // N(0, 0.02) from `rng`. Unused blocks of the original's checkpoints are ignored (counted).
  ParamStore::LoadReport load_llm(const TensorSource& file, Rng& rng);
  // Fresh projector, PyTorch's default Linear initialisation.
  void init_projector(Rng& rng) { proj_->init_weights(rng); }
  // Phase 2: only the projector trains; the decoder and tower are frozen (gradients still flow through
  // the decoder to the projector, but no weight gradient is computed for frozen parameters).
  void set_phase2_trainable(ParamStore& store) const;

  // features [B, P, Dv] (tower output) and ids i32 [B, S] -> logits [B * (P + S - 1), V + 1], or only
  // the rows listed in logit_rows (i32 indices into the B * (P + S - 1) positions; see Llama::forward).
  // With `save`, keeps what backward() needs.
  Tensor forward(const Tensor& features, const Tensor& ids, bool save, const Tensor* logit_rows = nullptr);
  // dlogits of the last saved forward -> gradients of the trainable parameters (projector; decoder and its
  // embedding when trainable).
  void backward(const Tensor& dlogits);
  // The same in two parts, for the fused output layer and loss (Llama::head_loss): the decoder's last hidden
  // states of logit_rows [R, D] (all B * (P + S - 1) positions without), and their gradient back.
  Tensor forward_hidden(const Tensor& features, const Tensor& ids, bool save, const Tensor* logit_rows = nullptr);
  void backward_hidden(const Tensor& dx);
  // Phase 3: the projector and the whole decoder (embedding included) train; the tower stays frozen.
  void set_phase3_trainable(ParamStore& store) const;

  // Inference: one image (preprocessed pixels [3, image, image], or a JPEG/PNG file preprocessed as in
  // training) through the tower and the projector -> the decoder's vision prefix [P, D].
  Tensor image_prefix(const Tensor& pixels);
  Tensor image_prefix_from_file(const std::string& image_path);

 private:
  Tensor assemble(const Tensor& features, const Tensor& ids, bool save);  // -> x0 [B * (P + S - 1), D]
  void backward_inputs(const Tensor& dx0);                                 // d x0 -> projector and embedding
  std::string prefix_;
  int64_t text_vocab_ = 0;
  ParamStore* store_ = nullptr;
  std::unique_ptr<Llama> llm_;
  std::unique_ptr<VisionTower> tower_;
  std::unique_ptr<Projector> proj_;
  Tensor saved_ids_;
  int64_t saved_B_ = 0, saved_S_ = 0;
};

// A whole VLM for inference from a checkpoint of phase 2 (llm.*, vision_encoder.*: the original's
// best_vlm.pt, tinyvlm's align output) or of phases 3-4 (the same under vlm.: the original's
// best_instruct.pt, DPO checkpoints), safetensors or torch.save. The config comes from config_path, else
// the checkpoint's metadata; its vocab_size may count <image> or not (the file decides).
struct LoadedVlm {
  Config config;
  ModelConfig text_config;  // vocab_size without <image>
  VisionConfig vision_config;
  ParamStore params;
  std::unique_ptr<VisionLanguageModel> model;
  std::string file_prefix;  // "" (phase 2) or "vlm." (phases 3-4)
  ParamStore::LoadReport report;
};
std::unique_ptr<LoadedVlm> load_vlm(const std::string& checkpoint, const std::string& config_path,
                                    const std::vector<std::string>& overrides = {});

// Targets of the assembled sequence: labels i32 [B, S] (labels[b, t] is the target of the position that
// predicts ids[b, t]; kIgnoreIndex = ignored; labels[:, 0] is never used) -> targets i32 [B * (P + S - 1)].
Tensor vlm_targets(const Tensor& labels, int64_t num_vision_tokens);

struct VlmLoss {
  double loss = 0;      // mean cross-entropy over the labelled tokens (NaN when there is none)
  double sum = 0;       // summed cross-entropy over the labelled tokens
  int64_t tokens = 0;   // labelled tokens
  // Per sequence b: summed CE (= minus the summed log-probability of its labelled tokens) and their count.
  std::vector<double> seq_sum;
  std::vector<int64_t> seq_tokens;
};
// One forward (and with `backward`, the backward) of the mean CE over labelled tokens, the loss of phases 2
// and 3, through the decoder's fused output layer and loss (only labelled rows reach the vocabulary). No aux loss.
VlmLoss vlm_loss_step(VisionLanguageModel& model, const Tensor& features, const Tensor& ids, const Tensor& labels,
                      bool backward);

}  // namespace tv
