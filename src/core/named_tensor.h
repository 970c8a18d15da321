// A tensor under a name: what checkpoint writers take and parameter stores hand out.
#pragma once
#include <string>

#include "core/tensor.h"

namespace tv {

struct NamedTensor {
  std::string name;
  Tensor tensor;  // any device; writers copy it to the host
};

}  // namespace tv
