// Every op in core/op_list.h must have its tests: an op added without them fails here.
#include <gtest/gtest.h>

#include "core/op_list.h"
#include "harness/op_test.h"

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
#undef TV_EXPECT_FWD_TEST
}
