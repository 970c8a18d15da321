#include "core/ops.h"
#include "harness/op_test.h"

using namespace tv;
using tvtest::at;

namespace {

// Direct stride-P convolution: y[b, ph*nw + pw, o] = bias[o] + sum_{c,i,j} w[o,c,i,j] img[b,c,ph*P+i,pw*P+j].
Tensor naive_patch_embed(const Tensor& img, const Tensor& w, const Tensor* bias) {
  const int64_t B = img.size(0), C = img.size(1), H = img.size(2), W = img.size(3), Co = w.size(0), P = w.size(2);
  const int64_t nh = H / P, nw = W / P;
  Tensor y = Tensor::empty({B, nh * nw, Co}, DType::F64);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t ph = 0; ph < nh; ++ph)
      for (int64_t pw = 0; pw < nw; ++pw)
        for (int64_t o = 0; o < Co; ++o) {
          double s = bias ? at(*bias, o) : 0.0;
          for (int64_t c = 0; c < C; ++c)
            for (int64_t i = 0; i < P; ++i)
              for (int64_t j = 0; j < P; ++j)
                s += at(w, ((o * C + c) * P + i) * P + j) * at(img, ((b * C + c) * H + ph * P + i) * W + pw * P + j);
          tvtest::set_at(y, (b * nh * nw + ph * nw + pw) * Co + o, s);
        }
  return y;
}

}  // namespace

TV_OP_TEST(patch_embed, forward, MatchesNaiveConv) {
  Rng rng(81);
  for (DType dt : {DType::F32, DType::F64})
    for (bool bias : {false, true})
      for (Shape ishape : {Shape{2, 3, 8, 12}, Shape{2, 3, 7, 11}}) {  // the second has ragged edges
        Tensor img = tvtest::rand_tensor(ishape, dt, rng), w = tvtest::rand_tensor({5, 3, 4, 4}, dt, rng);
        Tensor b = tvtest::rand_tensor({5}, dt, rng);
        const int64_t np = (ishape[2] / 4) * (ishape[3] / 4);
        Tensor y = Tensor::empty({2, np, 5}, dt);
        ops::patch_embed_fwd(y, img, w, bias ? &b : nullptr);
        Tensor b64 = b.to(DType::F64);
        Tensor ref = naive_patch_embed(img.to(DType::F64), w.to(DType::F64), bias ? &b64 : nullptr);
        double tol = dt == DType::F32 ? 1e-5 : 1e-12;
        tvtest::expect_close(y.to(DType::F64), ref, tol, tol, "patch_embed");
      }
}

TV_OP_TEST(patch_embed, forward, RejectsBadShapes) {
  Tensor img = Tensor::zeros({1, 3, 8, 8}), y = Tensor::empty({1, 4, 5});
  Tensor w_rect = Tensor::zeros({5, 3, 4, 2}), w_chan = Tensor::zeros({5, 2, 4, 4}), w = Tensor::zeros({5, 3, 4, 4});
  EXPECT_THROW(ops::patch_embed_fwd(y, img, w_rect, nullptr), Error);
  EXPECT_THROW(ops::patch_embed_fwd(y, img, w_chan, nullptr), Error);
  Tensor y_bad = Tensor::empty({1, 5, 5});
  EXPECT_THROW(ops::patch_embed_fwd(y_bad, img, w, nullptr), Error);
}

TV_OP_TEST(patch_embed, gradcheck, ImageWeightBias) {
  Rng rng(82);
  Tensor img = tvtest::rand_tensor({2, 3, 7, 6}, DType::F64, rng);
  Tensor w = tvtest::rand_tensor({5, 3, 3, 3}, DType::F64, rng);
  Tensor b = tvtest::rand_tensor({5}, DType::F64, rng), probe = tvtest::rand_tensor({2, 4, 5}, DType::F64, rng);
  auto loss = [&] {
    Tensor y = Tensor::empty({2, 4, 5}, DType::F64);
    ops::patch_embed_fwd(y, img, w, &b);
    return tvtest::dot(y, probe);
  };
  // Run the backward twice: it accumulates, so half the sum is the gradient.
  Tensor dimg = Tensor::zeros(img.shape(), DType::F64), dw = Tensor::zeros(w.shape(), DType::F64),
         db = Tensor::zeros(b.shape(), DType::F64);
  for (int rep = 0; rep < 2; ++rep) ops::patch_embed_bwd(&dimg, &dw, &db, probe, img, w);
  for (Tensor* g : {&dimg, &dw, &db}) ops::scale_(*g, 0.5);
  tvtest::expect_gradients(loss, {{"img", &img, &dimg}, {"w", &w, &dw}, {"b", &b, &db}});
  // Only the weight gradient (the frozen-encoder case skips dimg).
  Tensor dw1 = Tensor::zeros(w.shape(), DType::F64);
  ops::patch_embed_bwd(nullptr, &dw1, nullptr, probe, img, w);
  tvtest::expect_close(dw1, dw, 1e-12, 1e-12, "dw alone");
}
