// Kernels compiled for AVX2 + FMA.
#include "backend/cpu/kernels/simd.h"

namespace wenet_rt::cpu {
using Isa = Avx2;
}
#include "backend/cpu/isa/isa_kernels.inc"

namespace wenet_rt::cpu {
const KernelTable* kernels_avx2_table() {
  static const KernelTable t = make_table();
  return &t;
}
}  // namespace wenet_rt::cpu
