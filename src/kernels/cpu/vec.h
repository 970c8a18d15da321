// 32-byte GCC vector types (8 floats or 4 doubles: AVX2, the build's baseline) and the few helpers the
// hand-vectorised kernels share: unaligned load and store, broadcast, and exp on a whole vector.
// Arithmetic on these types is element by element and, under -ffp-contract=off, rounds exactly as the
// scalar code does.
#pragma once
#include <cstdint>
#include <cstring>

#include "kernels/cpu/vec_exp.h"

namespace tv::cpu {

template <typename T>
struct VecOf;
template <>
struct VecOf<float> {
  typedef float type __attribute__((vector_size(32)));
};
template <>
struct VecOf<double> {
  typedef double type __attribute__((vector_size(32)));
};
template <typename T>
using Vec = typename VecOf<T>::type;

template <typename T>
inline Vec<T> vload(const T* p) {
  Vec<T> v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
template <typename T>
inline void vstore(T* p, Vec<T> v) {
  std::memcpy(p, &v, sizeof(v));
}
template <typename T>
inline Vec<T> splat(T x) {
  return Vec<T>{} + x;
}

// vexp on a vector. Double: std::exp lane by lane (the double kernels serve gradient checks only).
template <typename T>
inline Vec<T> vexp_lanes(Vec<T> x) {
  constexpr int L = 32 / sizeof(T);
  T t[L];
  std::memcpy(t, &x, sizeof(x));
  for (int w = 0; w < L; ++w) t[w] = vexp(t[w]);
  std::memcpy(&x, t, sizeof(x));
  return x;
}
// Float: vexp's arithmetic written on vectors, equal to it bit for bit for every non-NaN x (NaN
// still gives NaN). The clamp to [-88, 88.3] is two vector selects here, where vexp's scalar form
// needs an integer order key (about a third of its instructions).
template <>
inline Vec<float> vexp_lanes<float>(Vec<float> x) {
  typedef int32_t IVec __attribute__((vector_size(32)));
  x = x < splat(-88.0f) ? splat(-88.0f) : x;  // NaN compares false and passes through
  x = x > splat(88.3f) ? splat(88.3f) : x;
  return exp_clamped<Vec<float>, IVec>(x);
}

}  // namespace tv::cpu
