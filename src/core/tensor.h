// The tensor: a typed, strided view into reference-counted storage on one device.
// Kernels work on contiguous tensors; views (reshape, narrow) share storage.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"

namespace tv {

enum class Device : uint8_t { CPU, CUDA };
const char* device_name(Device d);

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);

// Raw memory owned by a backend; freed through the same backend.
struct Storage {
  void* data = nullptr;
  size_t bytes = 0;
  Device device = Device::CPU;
  Storage(size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

class Tensor {
 public:
  Tensor() = default;
  static Tensor empty(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
  static Tensor from_f32(const Shape& shape, const std::vector<float>& values);
  static Tensor from_i32(const Shape& shape, const std::vector<int32_t>& values);

  bool defined() const { return storage_ != nullptr; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  int ndim() const { return int(shape_.size()); }
  int64_t size(int dim) const;  // negative dims count from the end
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return dtype_bytes(dtype_, size_t(numel())); }
  bool is_contiguous() const;

  void* raw() const;
  template <typename T> T* data() const {
    TV_CHECK(dtype_of<T>() == dtype_, "tensor is ", dtype_name(dtype_), ", accessed as ", dtype_name(dtype_of<T>()));
    return static_cast<T*>(raw());
  }

  // Views sharing storage.
  Tensor view(const Shape& shape) const;                       // contiguous reshape; one dim may be -1
  Tensor narrow(int dim, int64_t start, int64_t length) const;  // sub-range of one dim
  Tensor select(int64_t index) const;                           // index along dim 0, dropping it

  // New storage.
  Tensor clone() const;
  Tensor contiguous() const;
  Tensor to(Device device) const;
  // Numeric conversion between float types (f32, f64, bf16), and f32 <-> q8 (quantise_q8 / dequantise_q8).
  Tensor to(DType dtype) const;

  void zero_();
  void fill_(double value);
  void copy_from(const Tensor& src);  // same shape; any device pair; dtype converted when both float

  std::string describe() const;  // "f32[2,3] cpu"

 private:
  std::shared_ptr<Storage> storage_;
  size_t offset_ = 0;  // in elements
  DType dtype_ = DType::F32;
  Device device_ = Device::CPU;
  Shape shape_, strides_;
};

// Symmetric 8-bit quantisation of rows of n floats (n a multiple of kQ8Block): each block of 32 gets
// scale = max |x| / 127 and q = round-to-nearest-even(x / scale), so |x - scale * q| <= scale / 2.
void quantise_q8(BlockQ8* dst, const float* src, int64_t n);
void dequantise_q8(float* dst, const BlockQ8* src, int64_t n);

// Argument checks shared by ops: name the op and the argument so the message says what was expected.
void check_shape(const Tensor& t, const Shape& expected, const char* op, const char* arg);
void check_same_dtype(const Tensor& a, const Tensor& b, const char* op);
void check_contiguous(const Tensor& t, const char* op, const char* arg);

}  // namespace tv
