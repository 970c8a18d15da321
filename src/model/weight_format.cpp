#include "model/weight_format.h"

#include <cstring>

#include "core/error.h"
#include "model/llama.h"

namespace tv {

WeightFormat parse_weight_format(const std::string& name, const char* option) {
  if (name == "fp32") return WeightFormat::F32;
  if (name == "bf16") return WeightFormat::BF16;
  if (name == "q8") return WeightFormat::Q8;
  fail(option, " must be fp32, bf16 or q8, got '", name, "'");
}

const char* weight_format_name(WeightFormat f) {
  switch (f) {
    case WeightFormat::F32: return "fp32";
    case WeightFormat::BF16: return "bf16";
    case WeightFormat::Q8: return "q8";
  }
  return "?";
}

DType weight_format_dtype(WeightFormat f) {
  switch (f) {
    case WeightFormat::F32: return DType::F32;
    case WeightFormat::BF16: return DType::BF16;
    case WeightFormat::Q8: return DType::Q8;
  }
  return DType::F32;
}

std::vector<Param*> linear_weights(Llama& llm) {
  std::vector<Param*> w;
  auto add = [&](Param* p) {
    if (p) w.push_back(p);
  };
  for (LlamaLayer& L : llm.layers()) {
    for (Param* p : {L.wq, L.wk, L.wv, L.wo, L.w_gate, L.w_up, L.w_down, L.sh_gate, L.sh_up, L.sh_down}) add(p);
    for (const auto* experts : {&L.e_gate, &L.e_up, &L.e_down})
      for (Param* p : *experts) add(p);
  }
  add(&llm.output());
  return w;
}

void convert_linear_weights(Llama& llm, WeightFormat f) {
  if (f == WeightFormat::F32) return;
  const DType dt = weight_format_dtype(f);
  const std::vector<Param*> ws = linear_weights(llm);
  // Check every weight before converting any, so that a refusal leaves the model as it was.
  for (const Param* p : ws) {
    if (p->value.dtype() != DType::F32 && p->value.dtype() != dt)
      fail("--weights ", weight_format_name(f), ": ", p->name, " is already ", dtype_name(p->value.dtype()),
           " (a checkpoint stored by `convert --weights`), and is not converted again");
    if (dt == DType::Q8 && p->value.size(1) % kQ8Block != 0)
      fail("--weights q8 needs every linear's input size to be a multiple of ", kQ8Block, ": ", p->name, " is ",
           shape_str(p->value.shape()), " (use --weights bf16)");
  }
  for (Param* p : ws) {
    if (p->value.dtype() != dt) p->value = p->value.to(dt);  // the fp32 copy is freed here
    p->trainable = false;
    p->grad_storage = Tensor();
    p->has_grad = p->grad_stale = false;
  }
}

WeightFormat stored_weight_format(const std::map<std::string, std::string>& metadata, const std::string& path) {
  auto it = metadata.find(kWeightsMetadataKey);
  if (it == metadata.end()) return WeightFormat::F32;
  return parse_weight_format(it->second, (path + ": metadata '" + kWeightsMetadataKey + "'").c_str());
}

Tensor stored_weight_tensor(const Tensor& w) {
  if (w.dtype() != DType::Q8) return w;
  Tensor bytes = Tensor::empty({w.size(0), w.size(1) / kQ8Block * int64_t(sizeof(BlockQ8))}, DType::U8);
  std::memcpy(bytes.raw(), w.raw(), w.nbytes());
  return bytes;
}

void prepare_linear_weights(Llama& llm, WeightFormat f) {
  if (f == WeightFormat::F32) return;
  const DType dt = weight_format_dtype(f);
  for (Param* p : linear_weights(llm)) {
    const Shape s = p->value.shape();
    p->value = Tensor();  // the fp32 zeros go first
    p->value = Tensor::empty(s, dt);
    p->trainable = false;
    p->grad_storage = Tensor();
    p->has_grad = p->grad_stale = false;
  }
}

void require_trainable_weights(Llama& llm, const std::string& checkpoint) {
  for (const Param* p : linear_weights(llm))
    if (p->value.dtype() != DType::F32)
      fail(checkpoint, ": its linear weights are stored ", dtype_name(p->value.dtype()), " by `convert --weights` (",
           p->name, "): such a checkpoint runs forward only (generate, perplexity, ask, chat, serve) and cannot be "
           "trained; train from the checkpoint it was converted from");
}

}  // namespace tv
