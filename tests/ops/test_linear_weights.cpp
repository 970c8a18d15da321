// Linears with inference weights (`--weights bf16|q8`): every kernel path (scalar, AVX2, AVX512 where the
// CPU has it; the streaming one for N <= 16, the panel + GEMM one above) against the fp32 op on the
// widened weights, and against double sums on the original weights within the format's rounding; the
// q8 quantise/dequantise round trip; the op layer's checks.
#include <cmath>
#include <cstring>

#include "core/ops.h"
#include "harness/op_test.h"
#include "kernels/cpu/cpu_ops.h"

using namespace tv;
using tvtest::at;

namespace {

const std::vector<cpu::WeightKernelIsa> kIsas = {cpu::WeightKernelIsa::Scalar, cpu::WeightKernelIsa::Avx2,
                                                 cpu::WeightKernelIsa::Avx512};

struct IsaScope {
  explicit IsaScope(cpu::WeightKernelIsa isa) { cpu::set_weight_kernel_isa(isa); }
  ~IsaScope() { cpu::set_weight_kernel_isa(cpu::WeightKernelIsa::Avx512); }  // then clamped to the CPU's best
};

// |y - x @ w^T| <= bound[n, o] with bound the worst the weight rounding can do, summed over k:
// bf16: |w - bf16(w)| <= 2^-9 |w| (round to nearest, 8 significant bits); q8: |w - scale q| <= scale / 2,
// scale = max |w| of the block / 127. Plus fp32 summation: in * 2^-23 * sum |x w| (a loose bound).
void expect_within_rounding(const Tensor& y, const Tensor& x, const Tensor& w, DType fmt, const std::string& what) {
  const int64_t N = x.size(0), in = x.size(1), out = w.size(0);
  std::vector<double> amax(size_t(out * in / kQ8Block + 1), 0.0);  // per q8 block of w
  if (fmt == DType::Q8)
    for (int64_t i = 0; i < out * in; ++i) amax[size_t(i / kQ8Block)] = std::max(amax[size_t(i / kQ8Block)], std::fabs(at(w, i)));
  double worst = 0;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < out; ++o) {
      double exact = 0, bound = 0, mag = 0;
      for (int64_t k = 0; k < in; ++k) {
        const double xv = at(x, n * in + k), wv = at(w, o * in + k);
        exact += xv * wv;
        mag += std::fabs(xv * wv);
        if (fmt == DType::BF16) {
          bound += std::fabs(xv * wv) * std::ldexp(1.0, -9);
        } else {
          bound += std::fabs(xv) * amax[size_t((o * in + k) / kQ8Block)] / 127.0 / 2.0;
        }
      }
      bound += double(in) * std::ldexp(1.0, -23) * mag + 1e-6;
      const double err = std::fabs(at(y, n * out + o) - exact);
      worst = std::max(worst, err / bound);
    }
  EXPECT_LE(worst, 1.0) << what << ": worst error / rounding bound";
}

void check_format(DType fmt, const std::vector<int64_t>& ins) {
  Rng rng(7);
  for (cpu::WeightKernelIsa isa : kIsas) {
    IsaScope scope(isa);
    for (int64_t N : {1, 3, 7, 16, 17, 200})
      for (int64_t in : ins) {
        if (N > 16 && isa != kIsas.back()) continue;  // the large-N path does not depend on the instruction set
        for (int64_t out : {5, 33}) {
          Tensor x = tvtest::rand_tensor({N, in}, DType::F32, rng), w = tvtest::rand_tensor({out, in}, DType::F32, rng);
          Tensor b = tvtest::rand_tensor({out}, DType::F32, rng);
          Tensor wq = w.to(fmt), wf = wq.to(DType::F32);
          for (bool bias : {false, true}) {
            Tensor y = Tensor::empty({N, out}), ref = Tensor::empty({N, out});
            ops::linear_fwd(y, x, wq, bias ? &b : nullptr);
            ops::linear_fwd(ref, x, wf, bias ? &b : nullptr);
            const std::string what = str_cat(dtype_name(fmt), " isa ", int(isa), " N ", N, " in ", in, " out ", out,
                                             bias ? " bias" : "");
            // The same products of fp32 x and the widened weights, summed in another order (FMA, lanes).
            tvtest::expect_close(y, ref, 1e-5, 1e-5, what);
            if (!bias && N <= 17) expect_within_rounding(y, x, w, fmt, what);
          }
        }
      }
  }
}

// Grouped: groups of 0, 1, 3 and 20 rows (the last on the large-N path) against one linear per group.
void check_grouped(DType fmt) {
  Rng rng(8);
  const int64_t in = 64, out = 19;
  const std::vector<int64_t> offsets = {0, 1, 1, 4, 24};
  Tensor x = tvtest::rand_tensor({24, in}, DType::F32, rng);
  std::vector<Tensor> ws, wq;
  std::vector<const Tensor*> wp;
  for (int g = 0; g < 4; ++g) {
    ws.push_back(tvtest::rand_tensor({out, in}, DType::F32, rng));
    wq.push_back(ws.back().to(fmt));
  }
  for (const Tensor& t : wq) wp.push_back(&t);
  for (cpu::WeightKernelIsa isa : kIsas) {
    IsaScope scope(isa);
    Tensor y = Tensor::empty({24, out});
    ops::linear_grouped_fwd(y, x, wp, offsets);
    for (int g = 0; g < 4; ++g) {
      const int64_t n = offsets[g + 1] - offsets[g];
      if (n == 0) continue;
      Tensor ref = Tensor::empty({n, out});
      ops::linear_fwd(ref, x.narrow(0, offsets[g], n).contiguous(), wq[size_t(g)].to(DType::F32), nullptr);
      tvtest::expect_close(y.narrow(0, offsets[g], n).contiguous(), ref, 1e-5, 1e-5,
                           str_cat("grouped ", dtype_name(fmt), " group ", g, " isa ", int(isa)));
    }
  }
}

void check_refusals(DType fmt) {
  Tensor w = Tensor::zeros({5, 32}, DType::F32).to(fmt), x = Tensor::zeros({3, 32}), y = Tensor::zeros({3, 5});
  Tensor y_bad = Tensor::zeros({3, 6}), x64 = Tensor::zeros({3, 32}, DType::F64), y64 = Tensor::zeros({3, 5}, DType::F64);
  Tensor b64 = Tensor::zeros({5}, DType::F64), x_in = Tensor::zeros({3, 64});
  EXPECT_NO_THROW(ops::linear_fwd(y, x, w, nullptr));
  EXPECT_THROW(ops::linear_fwd(y_bad, x, w, nullptr), Error);  // wrong output shape
  EXPECT_THROW(ops::linear_fwd(y64, x64, w, nullptr), Error);  // f64 activations: f32 only
  EXPECT_THROW(ops::linear_fwd(y, x, w, &b64), Error);         // bias of another dtype
  EXPECT_THROW(ops::linear_fwd(y, x_in, w, nullptr), Error);   // in differs
  Tensor y16 = Tensor::zeros({3, 5}, DType::BF16);
  EXPECT_THROW(ops::linear_fwd(y16, x, w, nullptr), Error);    // output must be f32
  // Training refuses converted weights, saying why.
  Tensor dx = Tensor::zeros({3, 32}), dw = Tensor::zeros({5, 32});
  try {
    ops::linear_bwd(&dx, &dw, nullptr, y, x, w);
    ADD_FAILURE() << "linear_bwd accepted " << dtype_name(fmt) << " weights";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("forward only"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ops::linear_grouped_bwd(&dx, {nullptr}, y, x, {&w}, {0, 3}), Error);
  EXPECT_THROW(ops::linear_bwd_shared_input(&dx, {nullptr}, {&y}, x, {&w}), Error);
  // Grouped weights of mixed formats.
  Tensor wf = Tensor::zeros({5, 32});
  EXPECT_THROW(ops::linear_grouped_fwd(y, x, {&w, &wf}, {0, 1, 3}), Error);
}

}  // namespace

TV_OP_TEST(linear_bf16_weights, forward, MatchesF32OnWidenedWeights) { check_format(DType::BF16, {32, 96, 37, 200}); }
TV_OP_TEST(linear_q8_weights, forward, MatchesF32OnDequantisedWeights) { check_format(DType::Q8, {32, 96, 224}); }
TV_OP_TEST(linear_bf16_weights, forward, GroupedMatchesOneLinearPerGroup) { check_grouped(DType::BF16); }
TV_OP_TEST(linear_q8_weights, forward, GroupedMatchesOneLinearPerGroup) { check_grouped(DType::Q8); }
TV_OP_TEST(linear_bf16_weights, forward, RefusesBadArgumentsAndTraining) { check_refusals(DType::BF16); }
TV_OP_TEST(linear_q8_weights, forward, RefusesBadArgumentsAndTraining) { check_refusals(DType::Q8); }

TEST(Q8, QuantiseDequantiseRoundTrip) {
  Rng rng(9);
  // Blocks of mixed magnitudes, one all zero, one with a single non-zero, one of huge values.
  Tensor w = tvtest::rand_tensor({3, 128}, DType::F32, rng);
  float* p = w.data<float>();
  for (int64_t j = 32; j < 64; ++j) p[j] = 0.0f;
  for (int64_t j = 64; j < 96; ++j) p[j] = j == 70 ? -3.5f : 0.0f;
  for (int64_t j = 96; j < 128; ++j) p[j] *= 1e30f;
  for (int64_t j = 128; j < 160; ++j) p[j] *= 1e-3f;
  Tensor q = w.to(DType::Q8);
  EXPECT_EQ(q.dtype(), DType::Q8);
  EXPECT_EQ(q.nbytes(), size_t(3 * 128 / 32 * 36));
  const BlockQ8* blocks = static_cast<const BlockQ8*>(q.raw());
  Tensor back = q.to(DType::F32);
  for (int64_t b = 0; b < 3 * 128 / 32; ++b) {
    float amax = 0;
    for (int64_t j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(p[b * 32 + j]));
    EXPECT_FLOAT_EQ(blocks[b].scale, amax / 127.0f) << "block " << b;
    int peak = 0;
    for (int64_t j = 0; j < 32; ++j) {
      const float v = p[b * 32 + j], r = back.data<float>()[b * 32 + j];
      EXPECT_LE(std::fabs(v - r), blocks[b].scale * 0.5f * (1 + 1e-6f) + 1e-37f) << "block " << b << " j " << j;
      EXPECT_EQ(r, blocks[b].scale * float(blocks[b].q[j]));  // dequantise is scale * q exactly
      peak = std::max(peak, std::abs(int(blocks[b].q[j])));
    }
    EXPECT_EQ(peak, amax > 0 ? 127 : 0) << "block " << b << ": the largest value maps to +-127";
  }
  EXPECT_EQ(back.data<float>()[70], -3.5f);  // a lone value comes back exactly
  EXPECT_EQ(blocks[1].scale, 0.0f);          // the zero block
  // Quantising again what dequantise gave changes nothing.
  Tensor q2 = back.to(DType::Q8);
  EXPECT_EQ(std::memcmp(q2.raw(), q.raw(), q.nbytes()), 0);
}

TEST(Q8, RefusesRowsThatAreNotWholeBlocks) {
  EXPECT_THROW(Tensor::empty({4, 33}, DType::Q8), Error);
  EXPECT_THROW(Tensor::zeros({4, 33}).to(DType::Q8), Error);
  EXPECT_THROW(Tensor::zeros({4, 32}).to(DType::Q8).to(DType::BF16), Error);  // q8 converts from and to f32 only
}
