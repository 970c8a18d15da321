#include <gtest/gtest.h>

#include "core/tensor.h"

using namespace tv;

TEST(Tensor, ViewNarrowSelect) {
  Tensor t = Tensor::from_f32({2, 3}, {0, 1, 2, 3, 4, 5});
  Tensor v = t.view({3, -1});
  EXPECT_EQ(v.shape(), (Shape{3, 2}));
  Tensor r = t.select(1);
  EXPECT_EQ(r.shape(), (Shape{3}));
  EXPECT_EQ(r.data<float>()[2], 5.0f);
  Tensor col = t.narrow(1, 1, 2).contiguous();
  EXPECT_EQ(col.shape(), (Shape{2, 2}));
  EXPECT_EQ(col.data<float>()[0], 1.0f);
  EXPECT_EQ(col.data<float>()[3], 5.0f);
  EXPECT_THROW(t.view({4, 2}), Error);
  EXPECT_THROW(t.data<int32_t>(), Error);
}

TEST(Tensor, Bf16RoundTrip) {
  Tensor t = Tensor::from_f32({4}, {1.0f, -2.5f, 3.14159f, 1e-3f});
  Tensor b = t.to(DType::BF16);
  Tensor back = b.to(DType::F32);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(back.data<float>()[i], t.data<float>()[i], std::abs(t.data<float>()[i]) / 128);
  // Round-to-nearest-even on the tie 1 + 2^-8 rounds down to 1.
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + 1.0f / 256)), 1.0f);
}
