// Shared test machinery for ops: the registry of op tests, random inputs, closeness checks and the
// finite-difference gradient check.
#pragma once
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"

namespace tvtest {

// Records that `op` has a test of `kind` ("forward" or "gradcheck"); see tests/core/test_op_registry.cpp.
bool register_op_test(const char* op, const char* kind);
bool has_op_test(const std::string& op, const std::string& kind);

// A random tensor with values uniform in [lo, hi).
tv::Tensor rand_tensor(const tv::Shape& shape, tv::DType dtype, tv::Rng& rng, double lo = -1.0, double hi = 1.0);
tv::Tensor rand_ids(const tv::Shape& shape, int32_t upper, tv::Rng& rng);  // uniform ids in [0, upper)

// Element i of a float tensor, as double.
double at(const tv::Tensor& t, int64_t i);
void set_at(tv::Tensor& t, int64_t i, double v);
// sum(a * b) over all elements (same shape).
double dot(const tv::Tensor& a, const tv::Tensor& b);

// EXPECT every |actual - expected| <= atol + rtol * |expected|; reports the worst element.
void expect_close(const tv::Tensor& actual, const tv::Tensor& expected, double rtol, double atol,
                  const std::string& what);

// max |a - b| / max |b| over a whole tensor (any float dtype): relative to the tensor's scale, so near-zero
// elements of a large tensor do not dominate. The measure the PyTorch parity tests state their tolerances in.
double rel_err(const tv::Tensor& a, const tv::Tensor& b);

// Central-difference check of analytic gradients. `loss` recomputes the scalar loss from the current
// values of the inputs (all f64). Every element of every input is perturbed by +-h.
struct GradPair {
  std::string name;
  tv::Tensor* input;
  const tv::Tensor* analytic;
};
void expect_gradients(const std::function<double()>& loss, const std::vector<GradPair>& pairs, double h = 1e-6,
                      double rtol = 1e-6, double atol = 1e-8);

}  // namespace tvtest

// TV_OP_TEST(op, kind, name): a GoogleTest test `op_<op>.<kind>_<name>` registered as a `kind` test of `op`.
#define TV_OP_TEST(op, kind, name)                                                               \
  static const bool tv_op_test_reg_##op##_##kind##_##name = ::tvtest::register_op_test(#op, #kind); \
  TEST(op_##op, kind##_##name)
