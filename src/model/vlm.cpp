#include "model/vlm.h"

#include <cmath>
#include <set>

#include "core/ops.h"
#include "data/image.h"
#include "io/tensor_source.h"
#include "model/checkpoint.h"
#include "model/weight_format.h"

namespace tv {

VisionLanguageModel::VisionLanguageModel(const ModelConfig& text, const VisionConfig& vision, ParamStore& store,
                                         const std::string& prefix)
    : prefix_(prefix), text_vocab_(text.vocab_size), store_(&store) {
  ModelConfig grown = text;
  grown.vocab_size = text.vocab_size + 1;  // + <image>
  tower_ = std::make_unique<VisionTower>(vision, store, prefix + "vision_encoder.");
  store.set_trainable(prefix + "vision_encoder.", false);  // frozen in every phase: drop its gradient memory now
  // The projector maps the tower width to the decoder width through 4 x the tower width (768 -> 3072 -> D).
  proj_ = std::make_unique<Projector>(vision.hidden, 4 * vision.hidden, text.d_model, store,
                                      prefix + "vision_encoder.proj.");
  store.set_trainable(prefix + "vision_encoder.proj.", true);
  llm_ = std::make_unique<Llama>(grown, store, prefix + "llm.");
}

ParamStore::LoadReport VisionLanguageModel::load_llm(const TensorSource& file, Rng& rng) {
  const std::string fprefix = decoder_prefix(file);
  check_decoder_layout(file, fprefix, llm_->config());
  const std::string ours_prefix = prefix_ + "llm.";
  const int64_t V = text_vocab_, D = d_model();
  ParamStore::LoadReport r;
  std::set<std::string> used;
  bool grown = false;
  for (Param& p : store_->all()) {
    if (p.name.compare(0, ours_prefix.size(), ours_prefix) != 0) continue;
    const std::string suffix = p.name.substr(ours_prefix.size());
    const std::string fname = fprefix + suffix;
    if (!file.has(fname)) fail(file.path(), ": missing tensor '", fname, "' (decoder parameter ", suffix, ")");
    Shape fs = file.shape(fname);
    used.insert(fname);
    ++r.loaded;
    const bool vocab_rows = suffix == "emb.emb.weight" || suffix == "proj_vocab.weight";
    if (vocab_rows && fs == Shape{V, D}) {
      // A text-only checkpoint: copy its V rows and draw the <image> row.
      Tensor t = Tensor::empty({V + 1, D});
      Tensor head = t.narrow(0, 0, V);
      head.copy_from(file.get(fname, DType::F32));
      const double std = suffix == "emb.emb.weight" ? 1.0 / std::sqrt(double(D)) : 0.02;
      float* row = t.data<float>() + V * D;
      for (int64_t i = 0; i < D; ++i) row[i] = float(rng.normal() * std);
      p.value.copy_from(t);
      grown = true;
      continue;
    }
    if (fs != p.value.shape() && !(shape_numel(fs) == 1 && p.value.numel() == 1)) {
      if (vocab_rows)
        fail(file.path(), ": tensor '", fname, "' has shape ", shape_str(fs), "; the config's vocab_size = ", V,
             " and d_model = ", D, " expect [", V, ",", D, "] (text checkpoint) or [", V + 1, ",", D, "] (with <image>)");
      fail(file.path(), ": tensor '", fname, "' has shape ", shape_str(fs), ", the model expects ",
           shape_str(p.value.shape()));
    }
    p.value.copy_from(file.get(fname, p.value.dtype()).view(p.value.shape()));
  }
  for (const std::string& n : file.names())
    if (!used.count(n) && n.compare(0, fprefix.size(), fprefix) == 0) ++r.ignored;
  (void)grown;
  return r;
}

void VisionLanguageModel::set_phase2_trainable(ParamStore& store) const {
  store.set_trainable(prefix_, false);
  store.set_trainable(prefix_ + "vision_encoder.proj.", true);
}

void VisionLanguageModel::set_phase3_trainable(ParamStore& store) const {
  store.set_trainable(prefix_ + "llm.", true);
  store.set_trainable(prefix_ + "vision_encoder.", false);
  store.set_trainable(prefix_ + "vision_encoder.proj.", true);
}

Tensor VisionLanguageModel::assemble(const Tensor& features, const Tensor& ids, bool save) {
  const int64_t P = num_vision_tokens(), Dv = tower_->config().hidden, D = d_model();
  TV_CHECK(ids.ndim() == 2 && ids.size(1) >= 1 && ids.dtype() == DType::I32, "VisionLanguageModel: ids should be i32 [B, S], got ",
           ids.describe());
  const int64_t B = ids.size(0), S = ids.size(1), T = P + S - 1;
  TV_CHECK(features.ndim() == 3 && features.size(0) == B && features.size(1) == P && features.size(2) == Dv,
           "VisionLanguageModel: features should be [", B, ", ", P, ", ", Dv, "], got ", features.describe());
  {
    Tensor h = ids.to(Device::CPU).contiguous();
    for (int64_t b = 0; b < B; ++b)
      TV_CHECK(h.data<int32_t>()[b * S] == image_token_id(), "VisionLanguageModel: ids[", b, ", 0] must be <image> (",
               image_token_id(), "), got ", h.data<int32_t>()[b * S]);
  }
  Tensor vis = proj_->forward(features.contiguous().view({B * P, Dv}), save);  // [B*P, D]
  Tensor text = llm_->embed(ids);                                              // [B*S, D]; row 0 of each is dropped
  Tensor x0 = Tensor::empty({B * T, D}, vis.dtype(), vis.device());
  for (int64_t b = 0; b < B; ++b) {
    Tensor dv = x0.narrow(0, b * T, P), dt = x0.narrow(0, b * T + P, S - 1);
    dv.copy_from(vis.narrow(0, b * P, P));
    if (S > 1) dt.copy_from(text.narrow(0, b * S + 1, S - 1));
  }
  if (save) {
    saved_ids_ = ids;
    saved_B_ = B;
    saved_S_ = S;
  }
  return x0;
}

Tensor VisionLanguageModel::forward(const Tensor& features, const Tensor& ids, bool save, const Tensor* logit_rows) {
  Tensor x0 = assemble(features, ids, save);
  return llm_->forward(x0, ids.size(0), num_vision_tokens() + ids.size(1) - 1, save, logit_rows);
}

Tensor VisionLanguageModel::forward_hidden(const Tensor& features, const Tensor& ids, bool save, const Tensor* logit_rows) {
  Tensor x0 = assemble(features, ids, save);
  return llm_->forward_hidden(x0, ids.size(0), num_vision_tokens() + ids.size(1) - 1, save, logit_rows);
}

void VisionLanguageModel::backward(const Tensor& dlogits) {
  TV_CHECK(saved_ids_.defined(), "VisionLanguageModel::backward without a saved forward");
  backward_inputs(llm_->backward(dlogits, 0.0, true));
}

void VisionLanguageModel::backward_hidden(const Tensor& dx) {
  TV_CHECK(saved_ids_.defined(), "VisionLanguageModel::backward_hidden without a saved forward");
  backward_inputs(llm_->backward_hidden(dx, 0.0, true));
}

void VisionLanguageModel::backward_inputs(const Tensor& dx0) {
  const int64_t P = num_vision_tokens(), D = d_model(), B = saved_B_, S = saved_S_, T = P + S - 1;
  Tensor dvis = Tensor::empty({B * P, D}, dx0.dtype(), dx0.device());
  for (int64_t b = 0; b < B; ++b) {
    Tensor dst = dvis.narrow(0, b * P, P);
    dst.copy_from(dx0.narrow(0, b * T, P));
  }
  proj_->backward(dvis, false);
  if (llm_->embedding().has_grad_buffer()) {
    // The embedding of <image> at position 0 was dropped: its row gets zero, as in PyTorch.
    Tensor dtext = Tensor::zeros({B * S, D}, dx0.dtype(), dx0.device());
    for (int64_t b = 0; b < B; ++b) {
      if (S < 2) break;
      Tensor dst = dtext.narrow(0, b * S + 1, S - 1);
      dst.copy_from(dx0.narrow(0, b * T + P, S - 1));
    }
    llm_->embed_backward(saved_ids_, dtext);
  }
  saved_ids_ = Tensor();
}

Tensor VisionLanguageModel::image_prefix(const Tensor& pixels) {
  const VisionConfig& vc = tower_->config();
  TV_CHECK(pixels.ndim() == 3 && pixels.size(0) == 3 && pixels.size(1) == vc.image && pixels.size(2) == vc.image,
           "image_prefix: pixels should be [3, ", vc.image, ", ", vc.image, "], got ", pixels.describe());
  Tensor feats = tower_->forward(pixels.contiguous().view({1, 3, vc.image, vc.image}));
  return proj_->forward(feats.view({num_vision_tokens(), vc.hidden}), false);
}

Tensor VisionLanguageModel::image_prefix_from_file(const std::string& image_path) {
  const VisionConfig& vc = tower_->config();
  Tensor pixels = Tensor::empty({3, vc.image, vc.image});
  preprocess_image_file(image_path, pixels.data<float>(), int(vc.resize), int(vc.image));
  return image_prefix(pixels);
}

std::unique_ptr<LoadedVlm> load_vlm(const std::string& checkpoint, const std::string& config_path,
                                    const std::vector<std::string>& overrides) {
  auto out = std::make_unique<LoadedVlm>();
  out->config = resolve_config(config_path, checkpoint, overrides);  // a given config's mistakes show first
  std::unique_ptr<TensorSource> file = open_tensor_file(checkpoint);
  std::optional<std::string> prefix = find_vlm_prefix(*file);
  if (!prefix)
    fail(checkpoint, ": not a vision-language checkpoint (expected llm.*, vision_encoder.* and the projector "
         "vision_encoder.proj.*, or the same under vlm.", find_decoder_prefix(*file) ? "; this one holds only a decoder: "
         "use `tinyvlm generate`" : "", ")");
  out->file_prefix = *prefix;
  ModelConfig mc = ModelConfig::from(out->config);
  const VisionConfig vc = VisionConfig::from(out->config);
  const int64_t rows = file->shape(*prefix + "llm.emb.emb.weight")[0];
  if (rows == mc.vocab_size) {
    mc.vocab_size -= 1;  // the config counts <image>
  } else if (rows != mc.vocab_size + 1) {
    fail(checkpoint, ": the embedding has ", rows, " rows but the config says vocab_size = ", mc.vocab_size,
         " (a vision-language checkpoint has vocab_size + 1: the text vocabulary and <image>)");
  }
  check_decoder_layout(*file, *prefix + "llm.", mc);
  const int64_t pos_rows = file->shape(*prefix + "vision_encoder.pos_embed").size() == 3
                               ? file->shape(*prefix + "vision_encoder.pos_embed")[1]
                               : -1;
  if (pos_rows != vc.num_patches() + 1)
    fail(checkpoint, ": the tower's position embedding has ", pos_rows, " rows but the config's tower (",
         vc.describe(), ") expects ", vc.num_patches() + 1, " (check image_size and patch_size)");
  out->text_config = mc;
  out->vision_config = vc;
  out->model = std::make_unique<VisionLanguageModel>(mc, vc, out->params);
  out->params.set_trainable("", false);  // inference: no gradient memory
  prepare_linear_weights(out->model->llm(), stored_weight_format(file->metadata(), checkpoint));  // `convert --weights`
  out->report = out->params.load(*file, *prefix);
  return out;
}

Tensor vlm_targets(const Tensor& labels, int64_t P) {
  TV_CHECK(labels.ndim() == 2 && labels.dtype() == DType::I32, "vlm_targets: labels should be i32 [B, S], got ",
           labels.describe());
  const int64_t B = labels.size(0), S = labels.size(1), T = P + S - 1;
  Tensor h = labels.to(Device::CPU).contiguous();
  std::vector<int32_t> t(size_t(B * T), kIgnoreIndex);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s + 1 < S; ++s) t[size_t(b * T + P - 1 + s)] = h.data<int32_t>()[b * S + s + 1];
  return Tensor::from_i32({B * T}, t).to(labels.device());
}

VlmLoss vlm_loss_step(VisionLanguageModel& model, const Tensor& features, const Tensor& ids, const Tensor& labels,
                      bool backward) {
  TV_CHECK(labels.shape() == ids.shape(), "vlm_loss_step: ids and labels must have the same shape, got ", ids.describe(),
           " and ", labels.describe());
  const int64_t B = ids.size(0), T = model.num_vision_tokens() + ids.size(1) - 1;
  Tensor all_targets = vlm_targets(labels, model.num_vision_tokens());
  // Hidden states only where there is a label: the vision positions, the prompt and the padding never reach
  // the vocabulary projection (three quarters of it for a 196-token image and a 64-token caption).
  std::vector<int32_t> r, t;
  {
    Tensor h = all_targets.to(Device::CPU);
    for (int64_t i = 0; i < h.numel(); ++i)
      if (h.data<int32_t>()[i] != kIgnoreIndex) {
        r.push_back(int32_t(i));
        t.push_back(h.data<int32_t>()[i]);
      }
  }
  VlmLoss out;
  out.seq_sum.assign(size_t(B), 0.0);
  out.seq_tokens.assign(size_t(B), 0);
  if (r.empty()) {  // no labelled token: NaN, as PyTorch's mean over an empty selection (the trainer skips it)
    out.loss = std::nan("");
    return out;
  }
  Tensor rows = Tensor::from_i32({int64_t(r.size())}, r).to(labels.device());
  Tensor targets = Tensor::from_i32({int64_t(t.size())}, t).to(labels.device());
  Tensor x = model.forward_hidden(features, ids, backward, &rows);
  Tensor dx, row_losses;
  Llama::HeadLoss h = model.llm().head_loss(x, targets, backward ? &dx : nullptr, &row_losses);
  x = Tensor();
  Tensor hl = row_losses.to(Device::CPU).to(DType::F64);
  for (size_t i = 0; i < r.size(); ++i) {
    const size_t b = size_t(r[i] / T);
    out.seq_sum[b] += hl.data<double>()[i];
    ++out.seq_tokens[b];
  }
  out.sum = h.sum;
  out.tokens = h.count;
  out.loss = h.sum / double(h.count);
  if (backward) model.backward_hidden(dx);
  return out;
}

}  // namespace tv
