#!/usr/bin/env bash
# On the GPU machine: build with CUDA, run the GPU tests and the benchmark, keep the logs in $OUT
# (default ./out). Bundled Debian packages (.device/, see ../shared/device/README.md) are used when present.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out}; mkdir -p "$OUT"
[ -f .device/unpack.sh ] && source .device/unpack.sh
nvidia-smi -L | tee "$OUT/device.txt"
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DWENET_RT_CUDA=ON > "$OUT/configure.log" 2>&1 || { tail -30 "$OUT/configure.log"; exit 1; }
cmake --build build-gpu -j16 > "$OUT/build.log" 2>&1 || { grep -E "error" "$OUT/build.log" | head -30; exit 1; }
ctest --test-dir build-gpu -L gpu --output-on-failure > "$OUT/ctest-gpu.log" 2>&1; echo "gpu tests: rc=$?"; tail -5 "$OUT/ctest-gpu.log"
[ "${SKIP_BENCH:-0}" = 1 ] || ./build-gpu/wenet-rt bench ${BENCH_ARGS:-} --json "$OUT/bench.json" > "$OUT/bench.txt" 2> "$OUT/bench.err"
[ "${SKIP_BENCH:-0}" = 1 ] || cat "$OUT/bench.txt"
