#include <gtest/gtest.h>

#include <cmath>

#include "core/ops.h"
#include "model/params.h"

using namespace tv;

namespace {

double sum_abs(const Tensor& t) {
  double s = 0;
  for (int64_t i = 0; i < t.numel(); ++i) s += std::abs(double(t.data<float>()[i]));
  return s;
}

}  // namespace

// zero_grad() leaves written gradients stale, not cleared: the first writer of the next step is told to
// overwrite, every other access sees zeros, and an unused gradient never shows last step's values.
TEST(ParamStore, StaleGradientsReadAsZerosAndAreOverwrittenOnce) {
  ParamStore store;
  Param& a = store.add("a", {2, 3});
  Param& b = store.add("b", {4});
  EXPECT_EQ(a.grad_for_write().mode, ops::GradMode::Accumulate) << "a fresh buffer holds zeros";
  a.grad_storage.fill_(1.0);
  b.grad_for_backward()->fill_(2.0);
  EXPECT_TRUE(a.has_grad && b.has_grad);
  store.zero_grad();
  EXPECT_FALSE(a.has_grad || b.has_grad);
  EXPECT_TRUE(a.grad_stale && b.grad_stale);
  EXPECT_EQ(sum_abs(a.grad_storage), 6.0) << "not cleared eagerly";

  Param::GradWrite w = a.grad_for_write();
  EXPECT_EQ(w.grad, &a.grad_storage);
  EXPECT_EQ(w.mode, ops::GradMode::Overwrite);
  EXPECT_TRUE(a.has_grad);
  EXPECT_EQ(a.grad_for_write().mode, ops::GradMode::Accumulate) << "the second writer adds";

  // b was not written this step: any read clears it first.
  EXPECT_EQ(sum_abs(*b.grad_or_null()), 0.0);
  EXPECT_FALSE(b.has_grad);
  for (Tensor* g : store.grads()) EXPECT_EQ(g->defined(), true);

  // A stale gradient read through grad_for_backward (an op that only accumulates) is zeros too.
  store.zero_grad();
  EXPECT_EQ(sum_abs(*a.grad_for_backward()), 0.0);

  // Frozen parameters have no gradient at all.
  store.set_trainable("b", false);
  EXPECT_EQ(b.grad_or_null(), nullptr);
  EXPECT_EQ(b.grad_for_write().grad, nullptr);
}
