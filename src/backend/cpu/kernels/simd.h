// SIMD vocabulary of the CPU kernels: one struct per instruction set with the same static members,
// so that every kernel is written once as a template over it and compiled once per instruction set
// (src/backend/cpu/isa_*.cc, each with its own -m flags; cpu_features.cc picks one at run time).
//
// Only included by those translation units. Everything here is a template or a member of an
// ISA struct, so no symbol compiled with AVX-512 can be shared with (and picked by the linker for)
// code compiled for a lesser machine.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace wenet_rt::cpu {

// Shared constants of the vectorized exp (Cephes expf: range reduction by ln 2, degree-5
// polynomial; about 1 ulp on [-87, 88]). Inputs below kExpLo give 0, above kExpHi are clamped
// (so that 2^n stays a normal float: n in [-126, 127]).
struct ExpConst {
  static constexpr float kLog2e = 1.44269504088896341f;
  static constexpr float kLn2Hi = 0.693359375f;
  static constexpr float kLn2Lo = -2.12194440e-4f;
  static constexpr float kP0 = 1.9875691500E-4f, kP1 = 1.3981999507E-3f, kP2 = 8.3334519073E-3f,
                         kP3 = 4.1665795894E-2f, kP4 = 1.6666665459E-1f, kP5 = 5.0000001201E-1f;
  static constexpr float kExpHi = 88.02f, kExpLo = -87.3365478515625f;
};

// Plain C++: one lane. The fallback for machines without AVX2 (and the reference of the others).
struct Scalar {
  static constexpr int kWidth = 1;
  static constexpr const char* kName = "generic";
  using V = float;
  static V zero() { return 0.f; }
  static V set1(float x) { return x; }
  static V load(const float* p) { return *p; }
  static V load_n(const float* p, int n) { return n > 0 ? *p : 0.f; }
  static void store(float* p, V v) { *p = v; }
  static void store_n(float* p, V v, int n) {
    if (n > 0) *p = v;
  }
  static V add(V a, V b) { return a + b; }
  static V sub(V a, V b) { return a - b; }
  static V mul(V a, V b) { return a * b; }
  static V div(V a, V b) { return a / b; }
  static V fma(V a, V b, V c) { return a * b + c; }  // a * b + c
  static V max(V a, V b) { return a > b ? a : b; }
  static V min(V a, V b) { return a < b ? a : b; }
  static float reduce_add(V v) { return v; }
  static float reduce_max(V v) { return v; }
  static V exp(V x) {
    using C = ExpConst;
    if (x < C::kExpLo) return 0.f;
    x = x > C::kExpHi ? C::kExpHi : x;
    const float n = __builtin_floorf(x * C::kLog2e + 0.5f);
    float r = x - n * C::kLn2Hi;
    r = r - n * C::kLn2Lo;
    float p = C::kP0;
    p = p * r + C::kP1;
    p = p * r + C::kP2;
    p = p * r + C::kP3;
    p = p * r + C::kP4;
    p = p * r + C::kP5;
    p = p * r * r + r + 1.f;
    const uint32_t bits = uint32_t(int32_t(n) + 127) << 23;
    float scale;
    std::memcpy(&scale, &bits, sizeof scale);
    return p * scale;
  }
};

#if defined(__AVX2__) && defined(__FMA__)
struct Avx2 {
  static constexpr int kWidth = 8;
  static constexpr const char* kName = "avx2";
  using V = __m256;
  static V zero() { return _mm256_setzero_ps(); }
  static V set1(float x) { return _mm256_set1_ps(x); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static __m256i mask(int n) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx);
  }
  static V load_n(const float* p, int n) { return _mm256_maskload_ps(p, mask(n)); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static void store_n(float* p, V v, int n) { _mm256_maskstore_ps(p, mask(n), v); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V div(V a, V b) { return _mm256_div_ps(a, b); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V max(V a, V b) { return _mm256_max_ps(a, b); }
  static V min(V a, V b) { return _mm256_min_ps(a, b); }
  static float reduce_add(V v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static float reduce_max(V v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static V exp(V x) {
    using C = ExpConst;
    const V under = _mm256_cmp_ps(x, set1(C::kExpLo), _CMP_LT_OQ);
    x = _mm256_min_ps(x, set1(C::kExpHi));
    x = _mm256_max_ps(x, set1(C::kExpLo));
    const V n = _mm256_round_ps(_mm256_mul_ps(x, set1(C::kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    V r = _mm256_fnmadd_ps(n, set1(C::kLn2Hi), x);
    r = _mm256_fnmadd_ps(n, set1(C::kLn2Lo), r);
    V p = set1(C::kP0);
    p = fma(p, r, set1(C::kP1));
    p = fma(p, r, set1(C::kP2));
    p = fma(p, r, set1(C::kP3));
    p = fma(p, r, set1(C::kP4));
    p = fma(p, r, set1(C::kP5));
    p = fma(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, set1(1.f)));
    // 2^n through the exponent field; n in [-126, 127] after the clamps.
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(under, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
  }
};
#endif

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && defined(__AVX512VL__)
struct Avx512 {
  static constexpr int kWidth = 16;
  static constexpr const char* kName = "avx512";
  using V = __m512;
  static V zero() { return _mm512_setzero_ps(); }
  static V set1(float x) { return _mm512_set1_ps(x); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static __mmask16 mask(int n) { return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n > 0 ? n : 0)) - 1); }
  static V load_n(const float* p, int n) { return _mm512_maskz_loadu_ps(mask(n), p); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static void store_n(float* p, V v, int n) { _mm512_mask_storeu_ps(p, mask(n), v); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V div(V a, V b) { return _mm512_div_ps(a, b); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V max(V a, V b) { return _mm512_max_ps(a, b); }
  static V min(V a, V b) { return _mm512_min_ps(a, b); }
  static float reduce_add(V v) {
    const __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static float reduce_max(V v) {
    const __m256 s8 = _mm256_max_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static V exp(V x) {
    using C = ExpConst;
    const __mmask16 ok = _mm512_cmp_ps_mask(x, set1(C::kExpLo), _CMP_GE_OQ);
    x = _mm512_min_ps(x, set1(C::kExpHi));
    x = _mm512_max_ps(x, set1(C::kExpLo));
    const V n = _mm512_roundscale_ps(_mm512_mul_ps(x, set1(C::kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    V r = _mm512_fnmadd_ps(n, set1(C::kLn2Hi), x);
    r = _mm512_fnmadd_ps(n, set1(C::kLn2Lo), r);
    V p = set1(C::kP0);
    p = fma(p, r, set1(C::kP1));
    p = fma(p, r, set1(C::kP2));
    p = fma(p, r, set1(C::kP3));
    p = fma(p, r, set1(C::kP4));
    p = fma(p, r, set1(C::kP5));
    p = fma(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, set1(1.f)));
    return _mm512_maskz_scalef_ps(ok, p, n);
  }
};
#endif

// Activations on a vector (Activation's order: kNone, kRelu, kSwish as ints, see kernels.h).
template <class I>
inline typename I::V swish(typename I::V x) {
  // x * sigmoid(x) = x / (1 + exp(-x))
  return I::div(x, I::add(I::set1(1.f), I::exp(I::sub(I::zero(), x))));
}
template <class I>
inline typename I::V sigmoid(typename I::V x) {
  return I::div(I::set1(1.f), I::add(I::set1(1.f), I::exp(I::sub(I::zero(), x))));
}

}  // namespace wenet_rt::cpu
