// One libFuzzer binary per parser: WENET_FUZZ_TARGET names the entry of targets.h it drives.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "core/error.h"
#include "targets.h"

namespace {

const wenet_rt::fuzz::Target& target() {
  static const wenet_rt::fuzz::Target* t = wenet_rt::fuzz::find_target(WENET_FUZZ_TARGET);
  if (!t) {
    std::fprintf(stderr, "no fuzz target named '%s'\n", WENET_FUZZ_TARGET);
    std::abort();
  }
  return *t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    target().run(std::string_view(reinterpret_cast<const char*>(data), size));
  } catch (const wenet_rt::Error&) {
    // A clean refusal. Any other exception escapes and libFuzzer reports it as a crash.
  }
  return 0;
}
