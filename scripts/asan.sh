#!/usr/bin/env bash
# The second build type: the whole engine and its CPU tests under AddressSanitizer (with
# LeakSanitizer) and UndefinedBehaviorSanitizer, any report fatal, in ./build-asan (CUDA off).
#   scripts/asan.sh [extra ctest args...]      e.g. scripts/asan.sh -R Checkpoint
set -euo pipefail
cd "$(dirname "$0")/.."
build=${ASAN_BUILD:-build-asan}
# Its own build type ("Sanitize": only these flags): -O1 with line tables compiles fast and keeps
# reports readable; asserts stay on.
flags="-O1 -g1 -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Sanitize -DWENET_RT_CUDA=OFF \
  -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
cmake --build "$build" -j"$(nproc)"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# "long" tests (an hour of audio) take minutes here and prove nothing the sanitizers add to.
ctest --test-dir "$build" -L cpu -LE long --output-on-failure -j"$(nproc)" "$@"
