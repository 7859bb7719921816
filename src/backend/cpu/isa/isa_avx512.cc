// Kernels compiled for AVX-512 (F, BW, DQ, VL; VNNI where the compiler has it).
#include "backend/cpu/kernels/simd.h"

namespace wenet_rt::cpu {
using Isa = Avx512;
}
#include "backend/cpu/isa/isa_kernels.inc"

namespace wenet_rt::cpu {
const KernelTable* kernels_avx512_table() {
  static const KernelTable t = make_table();
  return &t;
}
}  // namespace wenet_rt::cpu
