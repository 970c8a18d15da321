// Every op in core/op_list.h must have its tests: an op added without them fails here.
#include <gtest/gtest.h>

#include <algorithm>

#include "core/op_list.h"
#include "harness/op_test.h"
#include "ops/dispatch.h"

TEST(OpRegistry, EveryDifferentiableOpHasForwardAndGradientChecks) {
#define TV_EXPECT_DIFF_TESTS(op)                                                         \
  EXPECT_TRUE(tvtest::has_op_test(#op, "forward")) << "op " #op " has no forward test";  \
  EXPECT_TRUE(tvtest::has_op_test(#op, "gradcheck")) << "op " #op " has no gradient check";
  TV_DIFFERENTIABLE_OPS(TV_EXPECT_DIFF_TESTS)
#undef TV_EXPECT_DIFF_TESTS
}

TEST(OpRegistry, EveryUpdateOpHasAForwardCheck) {
#define TV_EXPECT_FWD_TEST(op) EXPECT_TRUE(tvtest::has_op_test(#op, "forward")) << "op " #op " has no forward test";
  TV_UPDATE_OPS(TV_EXPECT_FWD_TEST)
  TV_INFERENCE_OPS(TV_EXPECT_FWD_TEST)
#undef TV_EXPECT_FWD_TEST
}

// Every backend (the stand-ins of the tests included) says for every op either which dtypes it runs or,
// with both false, that it does not run it: an op added to core/op_list.h without a word from a backend
// fails here.
TEST(OpRegistry, EveryBackendDeclaresEveryOp) {
  std::vector<std::string> ops;
#define TV_COLLECT_OP(op) ops.push_back(#op);
  TV_DIFFERENTIABLE_OPS(TV_COLLECT_OP)
  TV_UPDATE_OPS(TV_COLLECT_OP)
  TV_INFERENCE_OPS(TV_COLLECT_OP)
#undef TV_COLLECT_OP
  ASSERT_FALSE(tvtest::test_backends().empty());
  for (const tv::KernelBackend* b : tvtest::test_backends())
    for (const std::string& op : ops) {
      int found = 0;
      for (const tv::OpSupport& s : b->ops) found += s.op == op;
      EXPECT_EQ(found, 1) << "the " << b->name << " backend declares op " << op << " " << found
                          << " times (once expected: the dtypes it runs, or both false for unsupported)";
    }
}

TEST(OpRegistry, TheCpuBackendRunsEveryOpInBothFloatTypes) {
  const tv::KernelBackend& cpu = *tv::kernel_backends()[0];
  EXPECT_EQ(cpu.name, "cpu");
  std::vector<std::string> inference;
#define TV_COLLECT_OP(op) inference.push_back(#op);
  TV_INFERENCE_OPS(TV_COLLECT_OP)
#undef TV_COLLECT_OP
  for (const tv::OpSupport& s : cpu.ops) {
    const bool f32_only = std::find(inference.begin(), inference.end(), s.op) != inference.end();
    EXPECT_TRUE(s.f32 && (s.f64 || f32_only)) << s.op;  // inference ops: f32 activations only
  }
}
