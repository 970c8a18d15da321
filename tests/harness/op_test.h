// Shared test machinery for ops: the registry of op tests, random inputs, closeness checks and the
// finite-difference gradient check.
#pragma once
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"
#include "kernels/kernel_table.h"

namespace tvtest {

// Records that `op` has a test of `kind` ("forward" or "gradcheck"); see tests/core/test_op_registry.cpp.
bool register_op_test(const char* op, const char* kind);
bool has_op_test(const std::string& op, const std::string& kind);

// The backends every op case runs on: those compiled in (kernel_backends(), the CPU first) and any
// stand-in a test adds. Each TV_OP_TEST body runs once per backend whose device holds host memory, with
// that backend serving the CPU device; a device backend is checked against the CPU kernel with
// expect_backend_matches_cpu.
std::vector<const tv::KernelBackend*>& test_backends();
void add_test_backend(const tv::KernelBackend* b);
void run_on_every_backend(const char* op, const std::function<void()>& body);

// Runs `run` on backend `b` (inputs built on its device from the same seed) and on the CPU backend, and
// expects the outputs to agree: |b - cpu| <= atol + rtol * |cpu| element by element.
using BackendCase = std::function<std::vector<tv::Tensor>(tv::Device)>;
void expect_backend_matches_cpu(const tv::KernelBackend& b, const BackendCase& run, double rtol, double atol,
                                const std::string& what);

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
// The body runs once per backend of test_backends().
#define TV_OP_TEST(op, kind, name)                                                               \
  static const bool tv_op_test_reg_##op##_##kind##_##name = ::tvtest::register_op_test(#op, #kind); \
  static void tv_op_case_##op##_##kind##_##name();                                               \
  TEST(op_##op, kind##_##name) { ::tvtest::run_on_every_backend(#op, tv_op_case_##op##_##kind##_##name); } \
  static void tv_op_case_##op##_##kind##_##name()
