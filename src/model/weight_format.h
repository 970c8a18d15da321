// Inference weight formats (`--weights fp32|bf16|q8`): the decoder's linear weights converted once at
// load, so that a decode step, which must read every active weight, reads fewer bytes. fp32 is the
// default and leaves the model exactly as trained.
#pragma once
#include <string>

namespace tv {

class Llama;

enum class WeightFormat { F32, BF16, Q8 };

// "fp32", "bf16" or "q8"; anything else is an error naming `option`.
WeightFormat parse_weight_format(const std::string& name, const char* option = "--weights");
const char* weight_format_name(WeightFormat f);

// Converts the decoder's linear weights in place (the embedding, the norms and the router stay fp32).
// The model can run forward afterwards but no longer train.
void convert_linear_weights(Llama& llm, WeightFormat f);

}  // namespace tv
