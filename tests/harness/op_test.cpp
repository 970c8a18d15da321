#include "harness/op_test.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <utility>

#include "ops/dispatch.h"

namespace tvtest {
namespace {
std::set<std::pair<std::string, std::string>>& registry() {
  static std::set<std::pair<std::string, std::string>> r;
  return r;
}
}  // namespace

bool register_op_test(const char* op, const char* kind) {
  registry().insert({op, kind});
  return true;
}

bool has_op_test(const std::string& op, const std::string& kind) { return registry().count({op, kind}) > 0; }

std::vector<const tv::KernelBackend*>& test_backends() {
  static std::vector<const tv::KernelBackend*> b = tv::kernel_backends();
  return b;
}

void add_test_backend(const tv::KernelBackend* b) { test_backends().push_back(b); }

void run_on_every_backend(const char* op, const std::function<void()>& body) {
  for (const tv::KernelBackend* b : test_backends()) {
    if (b->device != tv::Device::CPU) continue;  // device backends: expect_backend_matches_cpu
    SCOPED_TRACE(std::string("op ") + op + " on the " + b->name + " backend");
    tv::KernelBackendScope scope(b->device, b);
    body();
    if (::testing::Test::HasFatalFailure()) return;
  }
}

void expect_backend_matches_cpu(const tv::KernelBackend& b, const BackendCase& run, double rtol, double atol,
                                const std::string& what) {
  std::vector<tv::Tensor> expected, actual;
  {
    tv::KernelBackendScope scope(tv::Device::CPU, tv::kernel_backends()[0]);
    expected = run(tv::Device::CPU);
  }
  {
    tv::KernelBackendScope scope(b.device, &b);
    actual = run(b.device);
  }
  ASSERT_EQ(actual.size(), expected.size()) << what;
  for (size_t i = 0; i < actual.size(); ++i)
    expect_close(actual[i].to(tv::Device::CPU), expected[i], rtol, atol,
                 what + " output " + std::to_string(i) + " on " + b.name);
}

double at(const tv::Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case tv::DType::F32: return t.data<float>()[i];
    case tv::DType::F64: return t.data<double>()[i];
    case tv::DType::I32: return t.data<int32_t>()[i];
    default: tv::fail("at(): unsupported dtype");
  }
}

void set_at(tv::Tensor& t, int64_t i, double v) {
  switch (t.dtype()) {
    case tv::DType::F32: t.data<float>()[i] = float(v); break;
    case tv::DType::F64: t.data<double>()[i] = v; break;
    default: tv::fail("set_at(): unsupported dtype");
  }
}

tv::Tensor rand_tensor(const tv::Shape& shape, tv::DType dtype, tv::Rng& rng, double lo, double hi) {
  tv::Tensor t = tv::Tensor::empty(shape, dtype);
  for (int64_t i = 0; i < t.numel(); ++i) set_at(t, i, rng.uniform(lo, hi));
  return t;
}

tv::Tensor rand_ids(const tv::Shape& shape, int32_t upper, tv::Rng& rng) {
  tv::Tensor t = tv::Tensor::empty(shape, tv::DType::I32);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<int32_t>()[i] = int32_t(rng.below(uint64_t(upper)));
  return t;
}

double dot(const tv::Tensor& a, const tv::Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  double s = 0;
  for (int64_t i = 0; i < a.numel(); ++i) s += at(a, i) * at(b, i);
  return s;
}

void expect_close(const tv::Tensor& actual, const tv::Tensor& expected, double rtol, double atol,
                  const std::string& what) {
  ASSERT_EQ(actual.shape(), expected.shape()) << what;
  int64_t worst = -1, bad = 0;
  double worst_excess = 0;
  for (int64_t i = 0; i < actual.numel(); ++i) {
    double a = at(actual, i), e = at(expected, i);
    double excess = std::abs(a - e) - (atol + rtol * std::abs(e));
    if (!(excess <= 0)) {  // also catches NaN
      ++bad;
      if (worst < 0 || !(excess <= worst_excess)) {
        worst = i;
        worst_excess = excess;
      }
    }
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << actual.numel() << " elements differ; worst at " << worst
                    << ": got " << (worst >= 0 ? at(actual, worst) : 0.0) << ", expected "
                    << (worst >= 0 ? at(expected, worst) : 0.0) << " (rtol " << rtol << ", atol " << atol << ")";
}

double rel_err(const tv::Tensor& a, const tv::Tensor& b) {
  tv::Tensor x = a.to(tv::DType::F64).contiguous(), y = b.to(tv::DType::F64).contiguous();
  EXPECT_EQ(x.numel(), y.numel());
  double num = 0, den = 0;
  for (int64_t i = 0; i < x.numel() && i < y.numel(); ++i) {
    num = std::max(num, std::abs(x.data<double>()[i] - y.data<double>()[i]));
    den = std::max(den, std::abs(y.data<double>()[i]));
  }
  return den > 0 ? num / den : num;
}

void expect_gradients(const std::function<double()>& loss, const std::vector<GradPair>& pairs, double h, double rtol,
                      double atol) {
  for (const GradPair& p : pairs) {
    ASSERT_EQ(p.input->dtype(), tv::DType::F64) << p.name << ": gradient checks run in double precision";
    tv::Tensor numeric = tv::Tensor::empty(p.input->shape(), tv::DType::F64);
    for (int64_t i = 0; i < p.input->numel(); ++i) {
      double x0 = at(*p.input, i);
      set_at(*p.input, i, x0 + h);
      double lp = loss();
      set_at(*p.input, i, x0 - h);
      double lm = loss();
      set_at(*p.input, i, x0);
      set_at(numeric, i, (lp - lm) / (2 * h));
    }
    expect_close(*p.analytic, numeric, rtol, atol, "gradient of " + p.name);
  }
}

}  // namespace tvtest
