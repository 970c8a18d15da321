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

void convert_linear_weights(Llama&, WeightFormat f) {
  if (f == WeightFormat::F32) return;
  fail("--weights ", weight_format_name(f), " is not supported by this build");
}

}  // namespace tv
