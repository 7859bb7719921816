// Kernels in plain C++ (any machine; the reference the vectorized ones are tested against).
#include "backend/cpu/kernels/simd.h"

namespace wenet_rt::cpu {
using Isa = Scalar;
}
#include "backend/cpu/isa/isa_kernels.inc"

namespace wenet_rt::cpu {
const KernelTable* kernels_generic() {
  static const KernelTable t = make_table();
  return &t;
}
}  // namespace wenet_rt::cpu
