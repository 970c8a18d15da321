#include <gtest/gtest.h>

#include "core/ops.h"
#include "core/profile.h"

using namespace tv;

namespace {

const profile::Entry* find(const std::vector<profile::Entry>& es, const std::string& name) {
  for (const profile::Entry& e : es)
    if (e.name == name) return &e;
  return nullptr;
}

}  // namespace

// Ops are counted only while enabled, an op's calls to other ops belong to it (linear_fwd -> matmul),
// and reset clears the table.
TEST(Profile, CountsOutermostOpsWhileEnabled) {
  profile::reset();
  Tensor x = Tensor::zeros({4, 8}), w = Tensor::zeros({3, 8}), y = Tensor::empty({4, 3});
  ops::linear_fwd(y, x, w, nullptr);
  EXPECT_TRUE(profile::entries().empty());
  profile::enable(true);
  ops::linear_fwd(y, x, w, nullptr);
  ops::linear_fwd(y, x, w, nullptr);
  ops::scale_(y, 2.0);
  profile::enable(false);
  ops::scale_(y, 2.0);
  const auto es = profile::entries();
  const profile::Entry* lin = find(es, "linear_fwd");
  const profile::Entry* sc = find(es, "scale_");
  ASSERT_NE(lin, nullptr);
  ASSERT_NE(sc, nullptr);
  EXPECT_EQ(lin->calls, 2);
  EXPECT_EQ(sc->calls, 1);
  EXPECT_GE(lin->seconds, 0.0);
  EXPECT_EQ(find(es, "matmul"), nullptr) << "matmul inside linear_fwd is linear_fwd's time";
  EXPECT_EQ(es.size(), 2u);
  profile::reset();
  EXPECT_TRUE(profile::entries().empty());
}
