#!/usr/bin/env bash
# The main job on a built-in default: set up, build, and transcribe the shipped examples with the
# shipped demo model (models/demo, trained here on synthetic English speech), on CUDA when a GPU
# is present, else on CPU. Prints `key text` lines and the real-time factor.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
model=${1:-models/demo}
device=cpu
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 && [ -f build/src/backend/cuda/libwenet_backend_cuda.a ]; then device=cuda; fi
./build/wenet-rt transcribe "$model" --device "$device" models/demo/examples/*.wav
echo "reference:" && cat models/demo/examples/text
