// A second CPU backend registered as a stand-in for a device backend: every op case of tests/ops runs on
// it too (tests/harness/op_test.h), and the comparison with the CPU kernel that a device backend gets is
// exercised here on it. Its linear_fwd counts its calls, to prove that the dispatch went through it.
#include <gtest/gtest.h>

#include <atomic>

#include "core/ops.h"
#include "harness/op_test.h"
#include "ops/dispatch.h"

namespace {

std::atomic<int> g_standin_linear_calls{0};
void (*g_cpu_linear_fwd)(float*, const float*, const float*, const float*, int64_t, int64_t, int64_t) = nullptr;

void counting_linear_fwd(float* y, const float* x, const float* w, const float* b, int64_t N, int64_t in,
                         int64_t out) {
  ++g_standin_linear_calls;
  g_cpu_linear_fwd(y, x, w, b, N, in, out);
}

const tv::KernelBackend& standin() {
  static const tv::KernelBackend b = [] {
    tv::KernelBackend s = *tv::kernel_backends()[0];
    s.name = "cpu-standin";
    g_cpu_linear_fwd = s.f32.linear_fwd;
    s.f32.linear_fwd = &counting_linear_fwd;
    return s;
  }();
  return b;
}

const bool g_registered = [] {
  tvtest::add_test_backend(&standin());
  return true;
}();

}  // namespace

TEST(BackendStandin, RunsEveryOpCaseAndIsComparedWithTheCpuKernel) {
  ASSERT_TRUE(g_registered);
  const int before = g_standin_linear_calls.load();
  tvtest::expect_backend_matches_cpu(
      standin(),
      [](tv::Device d) {
        tv::Rng rng(7);
        tv::Tensor x = tvtest::rand_tensor({5, 7}, tv::DType::F32, rng).to(d);
        tv::Tensor w = tvtest::rand_tensor({3, 7}, tv::DType::F32, rng).to(d);
        tv::Tensor b = tvtest::rand_tensor({3}, tv::DType::F32, rng).to(d);
        tv::Tensor y = tv::Tensor::empty({5, 3}, tv::DType::F32, d);
        tv::ops::linear_fwd(y, x, w, &b);
        tv::Tensor h = tv::Tensor::empty({5, 7}, tv::DType::F32, d), g = tvtest::rand_tensor({5, 7}, tv::DType::F32, rng).to(d);
        tv::ops::swiglu_fwd(h, x, g);
        return std::vector<tv::Tensor>{y, h};
      },
      0.0, 0.0, "linear + swiglu");
  EXPECT_EQ(g_standin_linear_calls.load(), before + 1) << "the stand-in's kernel was not the one called";
}

// The ops a device backend fuses or groups (attention, the MoE experts' grouped GEMMs, the fused output
// layer and loss): the comparison path with their backward too.
TEST(BackendStandin, FusedAndGroupedOpsAreComparedWithTheCpuKernels) {
  tvtest::expect_backend_matches_cpu(
      standin(),
      [](tv::Device d) {
        tv::Rng rng(3);
        const int64_t B = 2, S = 7, H = 4, Hkv = 2, Dh = 8;
        tv::Tensor q = tvtest::rand_tensor({B, S, H, Dh}, tv::DType::F32, rng).to(d);
        tv::Tensor k = tvtest::rand_tensor({B, S, Hkv, Dh}, tv::DType::F32, rng).to(d);
        tv::Tensor v = tvtest::rand_tensor({B, S, Hkv, Dh}, tv::DType::F32, rng).to(d);
        tv::Tensor out = tv::Tensor::empty({B, S, H, Dh}, tv::DType::F32, d), lse = tv::Tensor::empty({B, H, S}, tv::DType::F32, d);
        tv::ops::AttentionParams p;
        p.scale = 0.3;
        p.chunk_size = 3;
        tv::ops::attention_fwd(out, &lse, q, k, v, p);
        tv::Tensor dout = tvtest::rand_tensor({B, S, H, Dh}, tv::DType::F32, rng).to(d);
        tv::Tensor dq = tv::Tensor::zeros(q.shape(), tv::DType::F32, d), dk = tv::Tensor::zeros(k.shape(), tv::DType::F32, d),
                   dv = tv::Tensor::zeros(v.shape(), tv::DType::F32, d);
        double dscale = 0;
        tv::ops::attention_bwd(dq, dk, dv, &dscale, dout, q, k, v, out, lse, p);
        // Three experts over 9 rows (2, 0 and 7 of them).
        tv::Tensor x = tvtest::rand_tensor({9, 5}, tv::DType::F32, rng).to(d);
        std::vector<tv::Tensor> w;
        for (int g = 0; g < 3; ++g) w.push_back(tvtest::rand_tensor({6, 5}, tv::DType::F32, rng).to(d));
        std::vector<const tv::Tensor*> wp = {&w[0], &w[1], &w[2]};
        tv::Tensor y = tv::Tensor::empty({9, 6}, tv::DType::F32, d);
        tv::ops::linear_grouped_fwd(y, x, wp, {0, 2, 2, 9});
        tv::Tensor targets = tvtest::rand_ids({9}, 6, rng).to(d);
        tv::Tensor losses = tv::Tensor::empty({9}, tv::DType::F32, d), dlogits = tv::Tensor::empty({9, 6}, tv::DType::F32, d);
        tv::ops::linear_cross_entropy_with_grad(losses, dlogits, x, w[0], targets, 1.0 / 9);
        return std::vector<tv::Tensor>{out, lse, dq, dk, dv, tv::Tensor::from_f32({1}, {float(dscale)}), y, losses,
                                       dlogits};
      },
      0.0, 0.0, "attention, grouped linear, fused output layer and loss");
}

TEST(BackendStandin, AnOpTheBackendDeclaresUnsupportedFailsWithItsName) {
  tv::KernelBackend limited = standin();
  limited.name = "limited";
  for (tv::OpSupport& s : limited.ops)
    if (s.op == "softmax") s.f64 = false;
  tv::KernelBackendScope scope(tv::Device::CPU, &limited);
  tv::Tensor x = tv::Tensor::zeros({2, 3}, tv::DType::F64), y = tv::Tensor::zeros({2, 3}, tv::DType::F64);
  try {
    tv::ops::softmax_fwd(y, x);
    FAIL() << "softmax in f64 ran on a backend that does not declare it";
  } catch (const tv::Error& e) {
    EXPECT_NE(std::string(e.what()).find("the limited backend does not run softmax in f64"), std::string::npos) << e.what();
  }
  tv::Tensor xf = tv::Tensor::zeros({2, 3}), yf = tv::Tensor::zeros({2, 3});
  EXPECT_NO_THROW(tv::ops::softmax_fwd(yf, xf));
}
