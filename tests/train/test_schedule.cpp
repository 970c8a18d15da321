#include <gtest/gtest.h>

#include <cmath>

#include "data/token_windows.h"
#include "model/sampler.h"
#include "train/optimizer.h"

using namespace tv;

TEST(Schedule, WarmupThenCosineToTenPercent) {
  // As the original's LambdaLR: step 0 has lr 0, the peak at the end of warmup, 10% at the end.
  EXPECT_DOUBLE_EQ(lr_at(0, 10, 100, 1.0), 0.0);
  EXPECT_DOUBLE_EQ(lr_at(5, 10, 100, 1.0), 0.5);
  EXPECT_DOUBLE_EQ(lr_at(10, 10, 100, 1.0), 1.0);
  EXPECT_NEAR(lr_at(55, 10, 100, 1.0), 0.55, 1e-12);
  EXPECT_NEAR(lr_at(100, 10, 100, 1.0), 0.1, 1e-12);
}

TEST(TokenWindows, WindowsShiftTargetsAndResumeExactly) {
  std::vector<int32_t> toks(1000);
  for (int i = 0; i < 1000; ++i) toks[i] = i;
  TokenWindows w(TokenStream::from_vector(toks), 10, 0.1, true, 42);
  EXPECT_EQ(w.train_windows() + w.val_windows(), 99);
  Tensor ids, tg;
  w.next_train(3, ids, tg);
  for (int b = 0; b < 3; ++b)
    for (int s = 0; s < 10; ++s) EXPECT_EQ(tg.data<int32_t>()[b * 10 + s], ids.data<int32_t>()[b * 10 + s] + 1);
  // Save mid-epoch, keep drawing past an epoch boundary, restore into a fresh object: same batches.
  std::string st = w.state();
  std::vector<int32_t> expected;
  for (int i = 0; i < 40; ++i) {
    w.next_train(4, ids, tg);
    expected.insert(expected.end(), ids.data<int32_t>(), ids.data<int32_t>() + 40);
  }
  TokenWindows w2(TokenStream::from_vector(toks), 10, 0.1, true, 42);
  w2.restore(st);
  std::vector<int32_t> got;
  for (int i = 0; i < 40; ++i) {
    w2.next_train(4, ids, tg);
    got.insert(got.end(), ids.data<int32_t>(), ids.data<int32_t>() + 40);
  }
  EXPECT_EQ(got, expected);
  // Validation windows are the held-out tail of the stream.
  EXPECT_EQ(w.val_batch(0, 2, ids, tg), 2);
  EXPECT_EQ(ids.data<int32_t>()[0], int32_t(w.train_windows() * 10));
  EXPECT_THROW(TokenWindows(TokenStream::from_vector({1, 2, 3}), 10, 0.1, false, 1), Error);
}

TEST(Sampler, GreedyTopKTopPAndRepetitionPenalty) {
  Rng rng(1);
  std::vector<float> logits = {1.0f, 3.0f, 2.0f, -1.0f};
  SamplerOptions g;
  EXPECT_EQ(sample_next(logits, {}, g, rng), 1);
  g.repetition_penalty = 4.0;  // 3/4 < 2: token 2 wins once token 1 was seen
  EXPECT_EQ(sample_next(logits, {1}, g, rng), 2);
  SamplerOptions k1;
  k1.temperature = 1.0;
  k1.top_k = 1;
  for (int i = 0; i < 20; ++i) EXPECT_EQ(sample_next(logits, {}, k1, rng), 1);
  SamplerOptions p;
  p.temperature = 1.0;
  p.top_p = 0.5;  // the top token alone has ~0.66 of the mass
  for (int i = 0; i < 20; ++i) EXPECT_EQ(sample_next(logits, {}, p, rng), 1);
  SamplerOptions t;
  t.temperature = 1.0;
  int counts[4] = {0, 0, 0, 0};
  for (int i = 0; i < 4000; ++i) ++counts[sample_next(logits, {}, t, rng)];
  EXPECT_GT(counts[2], 600);  // ~24% expected
  EXPECT_GT(counts[1], counts[2]);
}
