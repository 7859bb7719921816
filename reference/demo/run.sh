#!/usr/bin/env bash
# Reproduces the demo model, a U2++ streaming conformer (dynamic chunk training, causal conv
# module; one model for offline and streaming recognition): synthetic espeak-ng speech, then
# training, with fixed seeds.
#
#   reference/demo/run.sh OUTDIR [all|data|train] [--tiny]
#
# data:  OUTDIR/data (WAVs, train.jsonl, test.jsonl, test_wav.scp, test_text, stats.json)
# train: OUTDIR/model (the WeNet model dir), OUTDIR/checkpoint.pt (fp32, for --init),
#        OUTDIR/examples, OUTDIR/test_subset, OUTDIR/results.json, OUTDIR/test_hyps.txt
#        (WER with full context and streaming with decoding chunks 16, 8, 4)
# Logs go to OUTDIR/data.log and OUTDIR/train.log. --tiny: a CPU smoke test (400 utterances,
# a 2 x 64 model, 1 minute of training). DEMO_TRAIN_UTTS (30000) and DEMO_TRAIN_MINUTES (7.0),
# the shipped model's settings, override the full run's size and training time budget.
# On the GPU machine, first `source .device/unpack.sh` (puts espeak-ng on PATH and sets
# ESPEAK_DATA_PATH). The full run fits one 10-minute command: ~1.5 min data (16 cores) + train
# stage ~8 min (features, 7.0 min budget, ~1 min evaluation of 4 decoding setups, one H100/H200).
set -euo pipefail
out=${1:?usage: $0 OUTDIR [all|data|train] [--tiny]}
stage=${2:-all}
tiny=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
case "$stage" in all|data|train) ;; *) echo "unknown stage '$stage' (all, data, train)" >&2; exit 2;; esac
if [ "$tiny" = "--tiny" ]; then
  data_args=(--train 400 --test 60)
  train_args=(--tiny --minutes 1)
else
  data_args=(--train "${DEMO_TRAIN_UTTS:-30000}" --test 500)
  train_args=(--minutes "${DEMO_TRAIN_MINUTES:-7.0}")
fi
mkdir -p "$out"

if [ "$stage" = all ] || [ "$stage" = data ]; then
  command -v espeak-ng >/dev/null || {
    echo "espeak-ng is not on PATH (GPU machine: source .device/unpack.sh first)" >&2; exit 1; }
  echo "espeak-ng: $(espeak-ng --version | head -1)"
  t0=$SECONDS
  "$py" "$here/make_data.py" --out "$out/data" --seed 1 "${data_args[@]}" 2>&1 | tee "$out/data.log"
  echo "data stage: $((SECONDS - t0)) s" | tee -a "$out/data.log"
fi

if [ "$stage" = all ] || [ "$stage" = train ]; then
  [ -f "$out/data/train.jsonl" ] || {
    echo "$out/data/train.jsonl is missing: run the data stage first (same machine)" >&2; exit 1; }
  t0=$SECONDS
  "$py" "$here/train.py" --data "$out/data" --out "$out" --seed 1 "${train_args[@]}" 2>&1 \
    | tee "$out/train.log"
  echo "train stage: $((SECONDS - t0)) s" | tee -a "$out/train.log"
fi
