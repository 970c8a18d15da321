// Inference weight formats (`--weights fp32|bf16|q8`): the decoder's linear weights converted once at
// load, so that a decode step, which must read every active weight, reads fewer bytes. fp32 is the
// default and leaves the model exactly as trained.
#pragma once
#include <string>
#include <vector>

#include "core/dtype.h"

namespace tv {

class Llama;
struct Param;

enum class WeightFormat { F32, BF16, Q8 };

// "fp32", "bf16" or "q8"; anything else is an error naming `option`.
WeightFormat parse_weight_format(const std::string& name, const char* option = "--weights");
const char* weight_format_name(WeightFormat f);

DType weight_format_dtype(WeightFormat f);  // F32, BF16 or Q8

// The weights convert_linear_weights converts: every layer's attention (q, k, v, o), dense FFN, shared
// and routed experts' projections, and the output head. The embedding, the norms, the NoPE temperatures
// and the MoE router stay fp32 (the router is tiny, and its top-k choice is sensitive to rounding).
std::vector<Param*> linear_weights(Llama& llm);

// Converts those weights in place, once (fp32 -> bf16 rounds to nearest even; fp32 -> q8 quantises
// blocks of 32 along the input dimension, core/dtype.h BlockQ8), freeing the fp32 copies. They become
// frozen: the model runs forward afterwards and refuses to train (the ops refuse their backward). q8
// needs every input size to be a multiple of 32 and says which weight is not. Weights already in the
// format (a converted checkpoint) are left as they are.
void convert_linear_weights(Llama& llm, WeightFormat f);

}  // namespace tv
