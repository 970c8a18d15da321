// Inference weight formats (`--weights fp32|bf16|q8`): the decoder's linear weights converted once at
// load, so that a decode step, which must read every active weight, reads fewer bytes. fp32 is the
// default and leaves the model exactly as trained.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

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

// Checkpoints stored converted (`tinyvlm convert --weights bf16|q8`): the metadata key "weights" names
// the format; the linear weights are stored as BF16 [out, in], or for q8 as U8 [out, in / 32 * 36], the
// blocks' bytes row by row (core/dtype.h BlockQ8: the fp32 scale, then the 32 int8 values).
constexpr const char* kWeightsMetadataKey = "weights";
// The format a checkpoint's metadata records: fp32 when it records none; an unknown name is an error.
WeightFormat stored_weight_format(const std::map<std::string, std::string>& metadata, const std::string& path);
// A linear weight as a converted checkpoint stores it (bf16 as it is; q8 as its bytes, shape above).
Tensor stored_weight_tensor(const Tensor& w);
// Gives the linear weights empty tensors of f's dtype, frozen, before a converted checkpoint is loaded
// into them (ParamStore::load reads the stored form); no fp32 copy is kept.
void prepare_linear_weights(Llama& llm, WeightFormat f);
// Fails, naming the checkpoint, when its linear weights were stored converted: a training phase calls it
// after loading (ParamStore::load refuses such tensors for fp32 parameters by itself).
void require_trainable_weights(Llama& llm, const std::string& checkpoint);

}  // namespace tv
