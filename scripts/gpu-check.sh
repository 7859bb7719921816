#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: build, run the GPU tests, check the demo transcripts on CUDA and
# run the end-to-end benchmarks (full-size random model and the demo model, each with the PyTorch
# reference pipeline as a peer). Logs go to $OUT (default ./out). Steps: any of
#   build tests transcripts streaming e2e-full e2e-demo streams grid     (default: all but grid)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-out}
mkdir -p "$out"
steps=${*:-build tests transcripts streaming e2e-full e2e-demo streams}
if [ -f .device/unpack.sh ]; then source .device/unpack.sh >/dev/null; fi
log() { echo "== $* ($(date +%T))"; }
for step in $steps; do
  case $step in
    build)
      log build
      cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >"$out/configure.log" 2>&1 &&
        cmake --build build -j"$(nproc)" >"$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; } ;;
    tests)
      log gpu tests
      ctest --test-dir build -L gpu --output-on-failure -j4 >"$out/gpu_tests.log" 2>&1
      grep -E "tests passed|FAILED|Failed" "$out/gpu_tests.log" | head -20 ;;
    transcripts)
      log demo transcripts on cuda
      for p in fp16 fp32; do
        ./build/wenet-rt transcribe models/demo --device cuda --precision $p models/demo/examples/*.wav \
          >"$out/demo_$p.txt" 2>"$out/demo_$p.err"
        if diff <(sort "$out/demo_$p.txt") <(sort models/demo/examples/text) >/dev/null; then echo "$p: exact"; else
          echo "$p: DIFFERENT"; diff <(sort "$out/demo_$p.txt") <(sort models/demo/examples/text); fi
      done ;;
    streaming)
      log demo transcripts on cuda, streaming
      ./build/wenet-rt transcribe models/demo --device cuda --streaming models/demo/examples/*.wav \
        >"$out/demo_streaming.txt" 2>"$out/demo_streaming.err"
      if diff <(sort "$out/demo_streaming.txt") <(sort models/demo/examples/text) >/dev/null; then echo "streaming: exact"; else
        echo "streaming: DIFFERENT"; diff <(sort "$out/demo_streaming.txt") <(sort models/demo/examples/text); fi ;;
    streams)
      log concurrent streams, full-size model and demo
      ./build/wenet-rt bench --streams "${STREAMS:-100,500,1000,2000}" --stream-seconds "${STREAM_SECONDS:-20}" \
        --json "$out/streams_full.json" >"$out/streams_full.log" 2>&1
      grep -v "^running" "$out/streams_full.log" | tail -12
      ./build/wenet-rt bench models/demo --streams "${DEMO_STREAMS:-100,1000}" --stream-seconds "${STREAM_SECONDS:-20}" \
        --json "$out/streams_demo.json" >"$out/streams_demo.log" 2>&1
      grep -v "^running" "$out/streams_demo.log" | tail -8 ;;
    e2e-full)
      log e2e full-size model
      ./build/wenet-rt bench --e2e --peers --peer-seconds "${PEER_SECONDS:-60}" --json "$out/e2e_full.json" >"$out/e2e_full.log" 2>&1
      cat "$out/e2e_full.log" | grep -v "^running" ;;
    e2e-demo)
      log e2e demo model
      ./build/wenet-rt bench models/demo --e2e --peers --peer-seconds "${PEER_SECONDS:-60}" --json "$out/e2e_demo.json" >"$out/e2e_demo.log" 2>&1
      cat "$out/e2e_demo.log" | grep -v "^running" ;;
    grid)
      log grid
      ./build/wenet-rt bench --peers >"$out/grid.log" 2>&1
      tail -30 "$out/grid.log" ;;
    *) echo "unknown step $step"; exit 2 ;;
  esac
done
