// The vectorisable exp every softmax, cross-entropy and activation kernel uses: accuracy against libm,
// the clamped ends, NaN, and the vector form agreeing with the scalar one bit for bit.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>

#include "kernels/cpu/vec.h"

using namespace tv::cpu;

TEST(VecExp, WithinOneUlpOfLibm) {
  double worst = 0;
  for (float x = -87.0f; x <= 88.0f; x += 0.0137f) {
    const double want = std::exp(double(x));
    const double got = vexp(x);
    const double ulp = std::ldexp(1.0, std::ilogb(want) - 23);
    worst = std::max(worst, std::fabs(got - want) / ulp);
  }
  EXPECT_LE(worst, 1.05) << "worst error in ulp";
}

TEST(VecExp, EndsAndNaN) {
  EXPECT_EQ(vexp(0.0f), 1.0f);
  EXPECT_EQ(vexp(-88.5f), 0.0f);
  EXPECT_EQ(vexp(-1000.0f), 0.0f);
  EXPECT_EQ(vexp(-std::numeric_limits<float>::infinity()), 0.0f);  // masked scores
  EXPECT_TRUE(std::isfinite(vexp(1000.0f)));                       // clamped, never inf
  EXPECT_TRUE(std::isnan(vexp(std::numeric_limits<float>::quiet_NaN())));
}

TEST(VecExp, VectorFormEqualsScalarBitForBit) {
  Vec<float> v;
  for (float x0 = -100.0f; x0 < 100.0f; x0 += 8 * 0.173f) {
    for (int l = 0; l < 8; ++l) v[l] = x0 + float(l) * 0.173f;
    const Vec<float> e = vexp_lanes<float>(v);
    for (int l = 0; l < 8; ++l)
      ASSERT_EQ(std::bit_cast<uint32_t>(e[l]), std::bit_cast<uint32_t>(vexp(v[l]))) << "x = " << v[l];
  }
  v = splat(std::numeric_limits<float>::quiet_NaN());
  EXPECT_TRUE(std::isnan(vexp_lanes<float>(v)[3]));
}
