#include "model/config_keys.h"

#include <algorithm>

namespace tv {
namespace {

using T = ConfigKeyType;

// One line per key. The original's config.toml keys and the keys its phase scripts read, then tinyvlm's
// own. Phase keys carry the phase's prefix: none (phase 1), vlm_ (2), instruct_ (3), dpo_ (4).
const std::vector<ConfigKey> kKeys = {
    // The decoder (docs/spec.md sections 1-2).
    {"vocab_size", T::Int, "text vocabulary size (before <image> is added)"},
    {"d_model", T::Int, "decoder width"},
    {"n_heads", T::Int, "query heads"},
    {"n_kv_heads", T::Int, "key/value heads (GQA)"},
    {"n_layers", T::Int, "decoder layers"},
    {"max_seq_len", T::Int, "phase-1 sequence length"},
    {"num_experts", T::Int, "routed experts per MoE layer"},
    {"num_experts_per_tok", T::Int, "experts chosen per token (top-k)"},
    {"moe_layer_freq", T::Int, "every n-th layer is MoE (0: none)"},
    {"d_expert", T::Int, "hidden size of each expert"},
    {"d_ff_standard", T::Int, "hidden size of the dense FFN"},
    {"rope_layers_ratio", T::Number, "share of RoPE layers (iRoPE)"},
    {"rope_theta", T::Number, "RoPE base"},
    {"chunk_size", T::Int, "chunked-attention window of RoPE layers"},
    // The vision tower (docs/spec.md section 4).
    {"vision_hidden_size", T::Int, "ViT width"},
    {"patch_size", T::Int, "ViT patch size"},
    {"image_size", T::Int, "ViT input size (after the center crop)"},
    {"vision_num_layers", T::Int, "ViT encoder layers"},
    {"vision_num_heads", T::Int, "ViT attention heads"},
    {"vision_mlp_dim", T::Int, "ViT MLP hidden size"},
    {"image_resize", T::Int, "shorter side before the center crop (default image_size * 256 / 224)"},
    // Phase 1: text pretraining.
    {"batch_size", T::Int, "phase-1 batch size"},
    {"batches_per_epoch", T::Int, "phase-1 batches per epoch"},
    {"epochs", T::Int, "phase-1 epochs"},
    {"lr", T::Number, "phase-1 peak learning rate"},
    {"weight_decay", T::Number, "phase-1 AdamW weight decay"},
    {"aux_loss_alpha", T::Number, "weight of the MoE load-balancing loss"},
    {"max_grad_norm", T::Number, "phase-1 gradient clipping norm"},
    {"warmup_steps", T::Int, "phase-1 warmup steps"},
    {"val_every", T::Int, "phase-1 steps between validations"},
    {"val_batches", T::Int, "phase-1 validation batches"},
    {"val_fraction", T::Number, "phase-1 share of data held out for validation"},
    {"shuffle", T::Bool, "phase-1 shuffle the training windows"},
    {"grad_accum", T::Int, "phase-1 micro-batches per optimizer step"},
    {"log_interval", T::Int, "phase-1 steps between progress lines"},
    {"save_interval", T::Int, "phase-1 steps between step_N checkpoints (0: best/last only)"},
    // Phase 2: vision-language alignment.
    {"vlm_batch_size", T::Int, "phase-2 batch size"},
    {"vlm_epochs", T::Int, "phase-2 epochs"},
    {"vlm_batches_per_epoch", T::Int, "phase-2 batches per epoch (-1: full epoch)"},
    {"vlm_learning_rate", T::Number, "phase-2 peak learning rate"},
    {"vlm_weight_decay", T::Number, "phase-2 AdamW weight decay"},
    {"vlm_max_grad_norm", T::Number, "phase-2 gradient clipping norm"},
    {"vlm_max_seq_len", T::Int, "phase-2 caption length"},
    {"vlm_warmup_steps", T::Int, "phase-2 warmup steps"},
    {"vlm_val_batches", T::Int, "phase-2 validation batches"},
    {"vlm_val_every", T::Int, "phase-2 steps between validations"},
    {"vlm_val_fraction", T::Number, "phase-2 share of pairs held out for validation"},
    {"vlm_shuffle", T::Bool, "phase-2 shuffle the training pairs"},
    {"vlm_image_workers", T::Int, "phase-2 image decoding threads (0: automatic)"},
    {"vlm_grad_accum", T::Int, "phase-2 micro-batches per optimizer step"},
    {"vlm_log_interval", T::Int, "phase-2 steps between progress lines"},
    {"vlm_save_interval", T::Int, "phase-2 steps between step_N checkpoints"},
    // Phase 3: instruction tuning.
    {"instruct_batch_size", T::Int, "phase-3 batch size"},
    {"instruct_epochs", T::Int, "phase-3 epochs"},
    {"instruct_batches_per_epoch", T::Int, "phase-3 batches per epoch (-1: full epoch)"},
    {"instruct_learning_rate", T::Number, "phase-3 peak learning rate"},
    {"instruct_weight_decay", T::Number, "phase-3 AdamW weight decay"},
    {"instruct_max_grad_norm", T::Number, "phase-3 gradient clipping norm"},
    {"instruct_max_seq_len", T::Int, "phase-3 conversation length"},
    {"instruct_warmup_steps", T::Int, "phase-3 warmup steps"},
    {"instruct_val_batches", T::Int, "phase-3 validation batches"},
    {"instruct_val_every", T::Int, "phase-3 steps between validations"},
    {"instruct_val_fraction", T::Number, "phase-3 share of conversations held out for validation"},
    {"instruct_shuffle", T::Bool, "phase-3 shuffle the training conversations"},
    {"instruct_group_by_length", T::Bool, "phase-3 batch conversations of similar length together"},
    {"instruct_image_workers", T::Int, "phase-3 image decoding threads (0: automatic)"},
    {"instruct_grad_accum", T::Int, "phase-3 micro-batches per optimizer step"},
    {"instruct_log_interval", T::Int, "phase-3 steps between progress lines"},
    {"instruct_save_interval", T::Int, "phase-3 steps between step_N checkpoints"},
    {"instruct_split_seed", T::Int, "phase-3 seed of the held-out validation split"},
    {"instruct_pad_to_max", T::Bool, "phase-3 pad every batch to instruct_max_seq_len (the original's way)"},
    {"instruct_coco_only", T::Bool, "phase-3 keep only COCO conversations (the original's default)"},
    // Phase 4: DPO.
    {"dpo_batch_size", T::Int, "phase-4 batch size (pairs)"},
    {"dpo_epochs", T::Int, "phase-4 epochs"},
    {"dpo_batches_per_epoch", T::Int, "phase-4 batches per epoch (-1: full epoch)"},
    {"dpo_learning_rate", T::Number, "phase-4 peak learning rate"},
    {"dpo_weight_decay", T::Number, "phase-4 AdamW weight decay"},
    {"dpo_max_grad_norm", T::Number, "phase-4 gradient clipping norm"},
    {"dpo_beta", T::Number, "DPO temperature"},
    {"dpo_loss", T::String, "DPO loss variant"},
    {"dpo_max_seq_len", T::Int, "phase-4 sequence length"},
    {"dpo_warmup_steps", T::Int, "phase-4 warmup steps"},
    {"dpo_val_batches", T::Int, "phase-4 validation batches"},
    {"dpo_val_every", T::Int, "phase-4 steps between validations"},
    {"dpo_val_fraction", T::Number, "phase-4 share of pairs held out for validation"},
    {"dpo_shuffle", T::Bool, "phase-4 shuffle the training pairs"},
    {"dpo_image_workers", T::Int, "phase-4 image decoding threads (0: automatic)"},
    {"dpo_grad_accum", T::Int, "phase-4 micro-batches per optimizer step"},
    {"dpo_log_interval", T::Int, "phase-4 steps between progress lines"},
    {"dpo_save_interval", T::Int, "phase-4 steps between step_N checkpoints"},
    {"dpo_split_seed", T::Int, "phase-4 seed of the held-out validation split"},
    {"dpo_precompute_ref", T::Bool, "phase-4 reference log-probs computed once before training"},
    // Every phase.
    {"seed", T::Int, "random seed (initialisation, splits, shuffling)"},
    {"matmul_precision", T::String, "fp32 or bf16 matmul operands"},
    {"zero", T::Int, "1: shard the AdamW moments across the ranks of a data-parallel run (ZeRO-1)"},
    {"max_skips", T::Int, "consecutive non-finite batches before a run stops (default 20)"},
    {"checkpoint_minutes", T::Number, "minutes between time-based `last` checkpoints (default 10, 0: off)"},
};

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

}  // namespace

const std::vector<ConfigKey>& config_keys() { return kKeys; }

const ConfigKey* find_config_key(const std::string& name) {
  for (const ConfigKey& k : kKeys)
    if (name == k.name) return &k;
  return nullptr;
}

std::string suggest_config_key(const std::string& name) {
  std::string best;
  size_t best_d = std::max<size_t>(2, name.size() / 3) + 1;
  for (const ConfigKey& k : kKeys) {
    size_t d = edit_distance(name, k.name);
    if (d < best_d) best_d = d, best = k.name;
  }
  return best;
}

const char* config_key_type_name(ConfigKeyType t) {
  switch (t) {
    case T::Int: return "an integer";
    case T::Number: return "a finite number";
    case T::Bool: return "true or false";
    default: return "a string";
  }
}

}  // namespace tv
