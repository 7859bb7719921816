#include <cstdlib>
#include <cstring>
#include <string>

#include "backend/cpu/kernels/kernels.h"
#include "core/error.h"

namespace wenet_rt::cpu {

#ifdef WENET_RT_CPU_X86
const KernelTable* kernels_avx512_table();
const KernelTable* kernels_avx2_table();
#endif

const KernelTable* kernels_avx512() {
#ifdef WENET_RT_CPU_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma")) {
    // The INT8 GEMM of this table uses VNNI; AVX-512 machines without it (Skylake-SP) take the
    // plain one.
    static const KernelTable t = [] {
      KernelTable k = *kernels_avx512_table();
      if (!__builtin_cpu_supports("avx512vnni")) {
        k.qgemm_panel = kernels_generic()->qgemm_panel;
        k.qconv_panel = kernels_generic()->qconv_panel;
      }
      return k;
    }();
    return &t;
  }
#endif
  return nullptr;
}

const KernelTable* kernels_avx2() {
#ifdef WENET_RT_CPU_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return kernels_avx2_table();
#endif
  return nullptr;
}

namespace {

const KernelTable& pick() {
  const char* env = std::getenv("WENET_RT_CPU_ISA");
  const std::string want = env ? env : "";
  WENET_CHECK(want.empty() || want == "generic" || want == "avx2" || want == "avx512",
              "WENET_RT_CPU_ISA: expected generic, avx2 or avx512, got '{}'", want);
  if (want.empty() || want == "avx512")
    if (const KernelTable* t = kernels_avx512()) return *t;
  if (want != "generic")
    if (const KernelTable* t = kernels_avx2()) return *t;
  return *kernels_generic();
}

}  // namespace

const KernelTable& kernels() {
  static const KernelTable& t = pick();
  return t;
}

}  // namespace wenet_rt::cpu
