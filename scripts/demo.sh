#!/usr/bin/env bash
# The main job on a built-in default: set up, build, describe a model and transcribe audio with it.
# Until a trained demo model ships, the model is WeNet's tiny random-weight golden model, so the
# text is meaningless, but every stage (audio, fbank, CMVN, encoder, CTC prefix beam search,
# attention rescoring) really runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
model=${1:-tests/data/wenet-goldens/u2pp_tiny}
device=cpu
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 && [ -f build/src/backend/cuda/libwenet_backend_cuda.a ]; then device=cuda; fi
./build/wenet-rt info "$model"
./build/wenet-rt transcribe "$model" --device "$device" tests/data/frontend/*.wav
