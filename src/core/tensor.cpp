#include "core/tensor.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

#include "core/backend.h"

namespace tv {

const char* device_name(Device d) { return d == Device::CPU ? "cpu" : "cuda"; }

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < s.size(); ++i) os << (i ? "," : "") << s[i];
  os << ']';
  return os.str();
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

static Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (int i = int(s.size()) - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

Storage::Storage(size_t n, Device d) : bytes(n), device(d) { data = backend(d).alloc(n); }
Storage::~Storage() { backend(device).free(data); }

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape) TV_CHECK(d >= 0, "negative dimension in shape ", shape_str(shape));
  TV_CHECK(dtype != DType::Q8 || (!shape.empty() && shape.back() % kQ8Block == 0), "a q8 tensor's last dimension must be a multiple of ",
           kQ8Block, ", got ", shape_str(shape));
  Tensor t;
  t.dtype_ = dtype;
  t.device_ = device;
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  t.storage_ = std::make_shared<Storage>(dtype_bytes(dtype, size_t(shape_numel(shape))), device);
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.zero_();
  return t;
}

Tensor Tensor::from_f32(const Shape& shape, const std::vector<float>& v) {
  TV_CHECK(int64_t(v.size()) == shape_numel(shape), "from_f32: ", v.size(), " values for shape ", shape_str(shape));
  Tensor t = empty(shape, DType::F32);
  if (!v.empty()) std::memcpy(t.raw(), v.data(), v.size() * 4);
  return t;
}

Tensor Tensor::from_i32(const Shape& shape, const std::vector<int32_t>& v) {
  TV_CHECK(int64_t(v.size()) == shape_numel(shape), "from_i32: ", v.size(), " values for shape ", shape_str(shape));
  Tensor t = empty(shape, DType::I32);
  if (!v.empty()) std::memcpy(t.raw(), v.data(), v.size() * 4);
  return t;
}

int64_t Tensor::size(int dim) const {
  int n = ndim();
  if (dim < 0) dim += n;
  TV_CHECK(dim >= 0 && dim < n, "dimension ", dim, " out of range for ", describe());
  return shape_[dim];
}

bool Tensor::is_contiguous() const {
  // Strides of size-1 dimensions never matter for addressing.
  Shape expected = contiguous_strides(shape_);
  for (size_t i = 0; i < shape_.size(); ++i)
    if (shape_[i] != 1 && strides_[i] != expected[i]) return false;
  return true;
}

void* Tensor::raw() const {
  TV_CHECK(defined(), "access to an undefined tensor");
  TV_CHECK(dtype_ != DType::Q8 || offset_ % kQ8Block == 0, "a q8 view must start at a block boundary");
  return static_cast<char*>(storage_->data) + dtype_bytes(dtype_, offset_);
}

Tensor Tensor::view(const Shape& shape) const {
  TV_CHECK(is_contiguous(), "view of a non-contiguous tensor ", describe());
  Shape s = shape;
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      TV_CHECK(infer < 0, "view: more than one -1 in ", shape_str(shape));
      infer = int(i);
    } else {
      known *= s[i];
    }
  }
  if (infer >= 0) {
    TV_CHECK(known > 0 && numel() % known == 0, "view: cannot infer ", shape_str(shape), " from ", describe());
    s[infer] = numel() / known;
  }
  TV_CHECK(shape_numel(s) == numel(), "view: ", shape_str(shape), " does not match ", describe());
  Tensor t = *this;
  t.shape_ = s;
  t.strides_ = contiguous_strides(s);
  return t;
}

Tensor Tensor::narrow(int dim, int64_t start, int64_t length) const {
  if (dim < 0) dim += ndim();
  TV_CHECK(dim >= 0 && dim < ndim(), "narrow: bad dimension for ", describe());
  TV_CHECK(start >= 0 && length >= 0 && start + length <= shape_[dim], "narrow: range [", start, ",", start + length,
           ") outside dimension ", dim, " of ", describe());
  Tensor t = *this;
  t.offset_ += size_t(start * strides_[dim]);
  t.shape_[dim] = length;
  return t;
}

Tensor Tensor::select(int64_t index) const {
  TV_CHECK(ndim() >= 1, "select on a 0-dim tensor");
  Tensor t = narrow(0, index, 1);
  t.shape_.erase(t.shape_.begin());
  t.strides_.erase(t.strides_.begin());
  return t;
}

// Copies a strided source into a contiguous host destination, element by element.
static void gather_strided(char* dst, const char* src, const Shape& shape, const Shape& strides, size_t es) {
  int n = int(shape.size());
  int64_t total = shape_numel(shape);
  std::vector<int64_t> idx(n, 0);
  for (int64_t i = 0; i < total; ++i) {
    int64_t off = 0;
    for (int d = 0; d < n; ++d) off += idx[d] * strides[d];
    std::memcpy(dst + i * es, src + off * es, es);
    for (int d = n - 1; d >= 0; --d) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  Tensor t = empty(shape_, dtype_, device_);
  t.copy_from(*this);
  return t;
}

Tensor Tensor::to(Device device) const {
  if (device == device_) return *this;
  Tensor t = empty(shape_, dtype_, device);
  t.copy_from(*this);
  return t;
}

static bool is_float(DType t) { return t == DType::F32 || t == DType::F64 || t == DType::BF16; }

static double load_as_double(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::F32: return static_cast<const float*>(p)[i];
    case DType::F64: return static_cast<const double*>(p)[i];
    case DType::BF16: return bf16_to_f32(static_cast<const bf16*>(p)[i]);
    case DType::I32: return static_cast<const int32_t*>(p)[i];
    case DType::U16: return static_cast<const uint16_t*>(p)[i];
    case DType::U8: return static_cast<const uint8_t*>(p)[i];
    case DType::Q8: break;  // blocks: converted whole by to()
  }
  return 0;
}

static void store_from_double(void* p, DType t, int64_t i, double v) {
  switch (t) {
    case DType::F32: static_cast<float*>(p)[i] = float(v); break;
    case DType::F64: static_cast<double*>(p)[i] = v; break;
    case DType::BF16: static_cast<bf16*>(p)[i] = f32_to_bf16(float(v)); break;
    case DType::I32: static_cast<int32_t*>(p)[i] = int32_t(v); break;
    case DType::U16: static_cast<uint16_t*>(p)[i] = uint16_t(v); break;
    case DType::U8: static_cast<uint8_t*>(p)[i] = uint8_t(v); break;
    case DType::Q8: fail("q8 tensors are written whole (Tensor::to), not element by element");
  }
}

void quantise_q8(BlockQ8* dst, const float* src, int64_t n) {
  for (int64_t b = 0; b < n / kQ8Block; ++b) {
    const float* x = src + b * kQ8Block;
    float amax = 0;
    for (int64_t j = 0; j < kQ8Block; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float scale = amax / 127.0f, inv = amax > 0 ? 127.0f / amax : 0.0f;
    dst[b].scale = scale;
    for (int64_t j = 0; j < kQ8Block; ++j)
      dst[b].q[j] = int8_t(std::clamp(std::nearbyint(x[j] * inv), -127.0f, 127.0f));
  }
}

void dequantise_q8(float* dst, const BlockQ8* src, int64_t n) {
  for (int64_t b = 0; b < n / kQ8Block; ++b)
    for (int64_t j = 0; j < kQ8Block; ++j) dst[b * kQ8Block + j] = src[b].scale * float(src[b].q[j]);
}

Tensor Tensor::to(DType dtype) const {
  if (dtype == dtype_) return *this;
  if (dtype == DType::Q8 || dtype_ == DType::Q8) {  // f32 <-> q8, whole rows of blocks
    TV_CHECK(dtype == DType::F32 || dtype_ == DType::F32, "conversion ", dtype_name(dtype_), " -> ", dtype_name(dtype),
             " is not supported (q8 converts from and to f32)");
    Tensor src = to(Device::CPU).contiguous();
    Tensor t = empty(shape_, dtype, Device::CPU);
    if (dtype == DType::Q8)
      quantise_q8(static_cast<BlockQ8*>(t.raw()), src.data<float>(), numel());
    else
      dequantise_q8(t.data<float>(), static_cast<const BlockQ8*>(src.raw()), numel());
    return t.to(device_);
  }
  TV_CHECK(is_float(dtype) && is_float(dtype_), "conversion ", dtype_name(dtype_), " -> ", dtype_name(dtype),
           " is not supported");
  Tensor src = to(Device::CPU).contiguous();
  Tensor t = empty(shape_, dtype, Device::CPU);
  int64_t n = numel();
  if (dtype_ == DType::F32 && dtype == DType::BF16) {
    const float* s = src.data<float>();
    bf16* d = t.data<bf16>();
    for (int64_t i = 0; i < n; ++i) d[i] = f32_to_bf16(s[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) store_from_double(t.raw(), dtype, i, load_as_double(src.raw(), dtype_, i));
  }
  return t.to(device_);
}

void Tensor::zero_() {
  if (is_contiguous()) {
    backend(device_).memset_zero(raw(), nbytes());
  } else {
    fill_(0.0);
  }
}

void Tensor::fill_(double value) {
  TV_CHECK(device_ == Device::CPU && is_contiguous(), "fill_ needs a contiguous host tensor, got ", describe());
  int64_t n = numel();
  for (int64_t i = 0; i < n; ++i) store_from_double(raw(), dtype_, i, value);
}

void Tensor::copy_from(const Tensor& src) {
  TV_CHECK(src.shape_ == shape_, "copy_from: shape ", shape_str(src.shape_), " into ", shape_str(shape_));
  if (src.dtype_ != dtype_) {
    copy_from(src.to(dtype_));
    return;
  }
  TV_CHECK(is_contiguous(), "copy_from into a non-contiguous tensor ", describe());
  size_t es = dtype_size(dtype_);
  if (!src.is_contiguous()) {
    TV_CHECK(dtype_ != DType::Q8, "strided copy of q8 blocks is not supported");
    TV_CHECK(src.device_ == Device::CPU, "strided copy from device memory is not supported");
    if (device_ == Device::CPU) {
      gather_strided(static_cast<char*>(raw()), static_cast<const char*>(src.raw()), src.shape_, src.strides_, es);
    } else {
      copy_from(src.contiguous());
    }
    return;
  }
  if (src.device_ == Device::CPU) {
    backend(device_).copy_from_host(raw(), src.raw(), nbytes());
  } else if (device_ == Device::CPU) {
    backend(src.device_).copy_to_host(raw(), src.raw(), nbytes());
  } else {
    backend(device_).copy_device(raw(), src.raw(), nbytes());
  }
}

std::string Tensor::describe() const {
  if (!defined()) return "undefined";
  return str_cat(dtype_name(dtype_), shape_str(shape_), " ", device_name(device_));
}

void check_shape(const Tensor& t, const Shape& expected, const char* op, const char* arg) {
  if (!t.defined() || t.shape() != expected)
    fail(op, ": ", arg, " should be ", shape_str(expected), ", got ", t.describe());
}

void check_same_dtype(const Tensor& a, const Tensor& b, const char* op) {
  if (a.dtype() != b.dtype()) fail(op, ": mixed dtypes ", dtype_name(a.dtype()), " and ", dtype_name(b.dtype()));
}

void check_contiguous(const Tensor& t, const char* op, const char* arg) {
  if (!t.is_contiguous()) fail(op, ": ", arg, " must be contiguous, got ", t.describe());
}

}  // namespace tv
