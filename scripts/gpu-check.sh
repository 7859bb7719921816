#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: build, run the GPU tests, check the demo transcripts on CUDA and
# run the end-to-end benchmarks (full-size random model and the demo model, each with the PyTorch
# reference pipeline as a peer). Logs go to $OUT (default ./out). Steps: any of
#   build tests transcripts streaming e2e-full e2e-demo streams grid pdl server python
# (default: the first seven). `server` (SERVER_MODEL: another model dir) and `python` run on the
# bench's full-size U2++ model written as a model dir (done by either when missing). `python` needs nanobind and pytest
# as wheels in .device/py (the GPU machine reaches no registry):
#   pip download --no-deps -d .device/py nanobind pytest pluggy iniconfig packaging pygments
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-out}
mkdir -p "$out"
steps=${*:-build tests transcripts streaming e2e-full e2e-demo streams}
if [ -f .device/unpack.sh ]; then source .device/unpack.sh >/dev/null; fi
log() { echo "== $* ($(date +%T))"; }
full=/tmp/wenet_rt_full_u2pp   # the full-size U2++ model (random weights, calibrated CTC) as a model dir
scp=/tmp/wenet_rt_full_u2pp.scp
full_model() {
  [ -f "$full/final.pt" ] && return 0
  log full-size U2++ model dir
  ./build/wenet-rt bench --streams 20 --stream-seconds 2 --dump-model "$full.dump" >"$out/full_model.log" 2>&1 &&
    python3 reference/dump_to_model_dir.py "$full.dump" "$full" >>"$out/full_model.log" 2>&1 || { tail "$out/full_model.log"; return 1; }
  # its distinct 1-20 s files (cut from the examples by the bench)
  for f in /tmp/wenet_rt_bench_streams/audio/*.wav; do echo "$(basename "$f" .wav) $f"; done >"$scp"
}
for step in $steps; do
  case $step in
    build)
      log build
      # WENET_RT_PYTHON off: a `python` step before (same machine) left it on in the cache, and its
      # nanobind is on PYTHONPATH only there.
      cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DWENET_RT_PYTHON=OFF >"$out/configure.log" 2>&1 &&
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
    pdl)
      log "Programmatic Dependent Launch (on by default): all GPU tests with it off, then the grid both ways"
      WENET_RT_PDL=0 ctest --test-dir build -L gpu --output-on-failure -j4 >"$out/gpu_tests_no_pdl.log" 2>&1
      grep -E "tests passed|FAILED|Failed" "$out/gpu_tests_no_pdl.log" | head -20
      ./build/tests/graph/test_cuda_model --gtest_filter='*Programmatic*' 2>&1 | grep -E "PDL|OK|FAILED" | head
      ./build/wenet-rt bench --compare-pdl >"$out/grid_pdl.log" 2>&1
      tail -30 "$out/grid_pdl.log" ;;
    grid)
      log grid
      ./build/wenet-rt bench --peers >"$out/grid.log" 2>&1
      tail -30 "$out/grid.log" ;;
    server)
      full_model || continue
      model=${SERVER_MODEL:-$full}
      log "server: WebSocket streams and HTTP on $model"
      ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
      ./build/wenet-rt transcribe "$model" --device cuda --streaming --left-chunks 5 --wav-scp "$scp" >/tmp/expect_streaming.txt 2>"$out/expect_streaming.err"
      ./build/wenet-rt transcribe "$model" --device cuda --wav-scp "$scp" >/tmp/expect_offline.txt 2>"$out/expect_offline.err"
      tail -1 "$out/expect_offline.err"
      ./build/wenet-rt serve "$model" --device cuda --port 10086 --left-chunks 5 --max-streams "${SERVER_MAX_STREAMS:-2500}" --max-connections 10000 ${SERVER_ARGS:-} \
        >"$out/serve.log" 2>&1 &
      server=$!
      for _ in $(seq 120); do (exec 3<>/dev/tcp/127.0.0.1/10086) 2>/dev/null && break; sleep 1; done
      for n in ${SERVER_STREAMS:-1000 2000}; do
        ./build/wenet-rt loadtest ws://127.0.0.1:10086 --wav-scp "$scp" --expect /tmp/expect_streaming.txt \
          --streams "$n" --duration "${SERVER_SECONDS:-60}" --json "$out/loadtest_ws_$n.json" >"$out/loadtest_ws_$n.log" 2>&1
        echo "-- $n WebSocket streams"; cat "$out/loadtest_ws_$n.log"
      done
      for n in ${SERVER_HTTP:-256}; do
        ./build/wenet-rt loadtest ws://127.0.0.1:10086 --wav-scp "$scp" --expect /tmp/expect_offline.txt \
          --http "$n" --duration "${SERVER_HTTP_SECONDS:-30}" --json "$out/loadtest_http_$n.json" >"$out/loadtest_http_$n.log" 2>&1
        echo "-- $n HTTP clients"; cat "$out/loadtest_http_$n.log"
      done
      curl -s localhost:10086/metrics >"$out/metrics.txt" || true
      kill -TERM $server; wait $server; echo "server exit status $?"; tail -3 "$out/serve.log" ;;
    python)
      log python binding on cuda
      deps=/tmp/wenet_rt_pydeps pkg=/tmp/wenet_rt_pkg
      rm -rf "$deps" "$pkg" && mkdir -p "$deps" "$pkg"
      for w in .device/py/*.whl; do python3 -m zipfile -e "$w" "$deps"; done
      PYTHONPATH=$deps cmake -S . -B build -DWENET_RT_PYTHON=ON -DPython_EXECUTABLE="$(command -v python3)" >>"$out/configure.log" 2>&1 &&
        PYTHONPATH=$deps cmake --build build --target _core -j"$(nproc)" >"$out/build_python.log" 2>&1 || { tail -30 "$out/build_python.log"; continue; }
      cp -r python/wenet_rt "$pkg/" && cp build/python/_core*.so "$pkg/wenet_rt/"
      PYTHONPATH=$pkg:$deps python3 -m pytest -q -p no:cacheprovider tests/python/test_binding.py tests/python/test_streaming.py \
        >"$out/python_tests.log" 2>&1
      tail -5 "$out/python_tests.log"
      full_model || continue
      PYTHONPATH=$pkg python3 scripts/binding_overhead.py "$full" --wav-scp "$scp" --runs "${OVERHEAD_RUNS:-7}" 2>&1 | tee "$out/binding_overhead.log" ;;
    *) echo "unknown step $step"; exit 2 ;;
  esac
done
