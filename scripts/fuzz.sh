#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) into ./build-fuzz, makes their seed corpora
# from tests/data, and runs each target for N seconds (default 30); fails on any crash, leak,
# timeout, out-of-memory or sanitizer report. README: "Fuzzing and sanitizers".
#   scripts/fuzz.sh [seconds] [target...]     targets: checkpoint unpickle config cmvn units audio
# Environment: FUZZ_JOBS=K runs K processes per target (libFuzzer -fork), FUZZ_BUILD=dir.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(checkpoint unpickle config cmvn units audio)
build=${FUZZ_BUILD:-build-fuzz}
jobs=${FUZZ_JOBS:-1}

# clang with libFuzzer's runtime (Debian: clang + libclang-rt-dev).
have_libfuzzer() {
  command -v clang++ >/dev/null || return 1
  echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' |
    clang++ -x c++ -fsanitize=fuzzer,address - -o /tmp/wenet-rt-libfuzzer-check.$$ 2>/dev/null
  local ok=$?
  rm -f /tmp/wenet-rt-libfuzzer-check.$$
  return $ok
}
if ! have_libfuzzer; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends clang libclang-rt-dev
  have_libfuzzer || { echo "fuzz.sh: clang cannot build with -fsanitize=fuzzer" >&2; exit 1; }
fi

flags="-O1 -gline-tables-only -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Sanitize -DWENET_RT_CUDA=OFF -DWENET_RT_FUZZ=ON \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" >/dev/null
cmake --build "$build" --target fuzzers -j"$(nproc)"

# Seeds are regenerated each run; what the fuzzers find accumulates in $build/corpus/<target>.
rm -rf "$build/seeds"
"$build/tests/fuzz/make_fuzz_corpus" tests/data tests/fuzz/seeds "$build/seeds"
cat tests/fuzz/dict/pickle.dict tests/fuzz/dict/zip.dict >"$build/checkpoint.dict"
declare -A dict=([checkpoint]="$build/checkpoint.dict" [unpickle]=tests/fuzz/dict/pickle.dict
                 [config]=tests/fuzz/dict/config.dict [cmvn]=tests/fuzz/dict/cmvn.dict
                 [units]="" [audio]=tests/fuzz/dict/audio.dict)
declare -A max_len=([checkpoint]=32768 [unpickle]=16384 [config]=8192 [cmvn]=8192 [units]=8192 [audio]=32768)

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
summary=""
for t in "${targets[@]}"; do
  [ -n "${max_len[$t]+x}" ] || { echo "fuzz.sh: unknown target '$t'" >&2; exit 2; }
  corpus="$build/corpus/$t" artifacts="$build/artifacts/$t"
  mkdir -p "$corpus" "$artifacts"
  regressions=()
  [ -d "tests/regressions/$t" ] && regressions=("tests/regressions/$t")
  args=(-max_total_time="$seconds" -max_len="${max_len[$t]}" -timeout=10 -rss_limit_mb=2048
        -artifact_prefix="$artifacts/" -print_final_stats=1)
  if [ -n "${dict[$t]}" ]; then args+=(-dict="${dict[$t]}"); fi
  if [ "$jobs" -gt 1 ]; then args+=(-fork="$jobs"); fi
  log="$build/fuzz_$t.log"
  echo "== fuzz_$t for ${seconds}s (log: $log)"
  rc=0
  "$build/tests/fuzz/fuzz_$t" "${args[@]}" "$corpus" "$build/seeds/$t" "${regressions[@]}" >"$log" 2>&1 || rc=$?
  runs=$( (grep -o 'stat::number_of_executed_units: [0-9]*' "$log" || true) | awk '{s += $2} END {print s + 0}')
  if [ "$jobs" -gt 1 ]; then runs=$( (grep -o '^#[0-9]*' "$log" || true) | tail -1 | tr -d '#'); fi
  if [ "$rc" -ne 0 ]; then
    status=1
    summary+=$(printf '%-11s FAILED (exit %s) after %s executions; see %s and %s\n' "$t" "$rc" "$runs" "$log" "$artifacts")$'\n'
    grep -E 'ERROR|SUMMARY|deadly|terminate|Test unit written' "$log" | head -20 || true
  else
    summary+=$(printf '%-11s ok: %s executions, corpus %s files\n' "$t" "$runs" "$(ls "$corpus" | wc -l)")$'\n'
  fi
done
echo "== fuzz summary (${seconds}s per target)"
printf '%s' "$summary"
exit $status
