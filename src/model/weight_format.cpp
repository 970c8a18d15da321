#include "model/weight_format.h"

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
    TV_CHECK(p->value.dtype() == DType::F32 || p->value.dtype() == dt, "--weights ", weight_format_name(f), ": ",
             p->name, " is already ", dtype_name(p->value.dtype()));
    if (dt == DType::Q8)
      TV_CHECK(p->value.size(1) % kQ8Block == 0, "--weights q8 needs every linear's input size to be a multiple of ",
               kQ8Block, ": ", p->name, " is ", shape_str(p->value.shape()), " (use --weights bf16)");
  }
  for (Param* p : ws) {
    if (p->value.dtype() != dt) p->value = p->value.to(dt);  // the fp32 copy is freed here
    p->trainable = false;
    p->grad_storage = Tensor();
    p->has_grad = p->grad_stale = false;
  }
}

}  // namespace tv
