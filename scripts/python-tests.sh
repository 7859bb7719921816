#!/usr/bin/env bash
# Python package tests (CI runs this after scripts/build.sh): a venv of the distribution's python3
# (PyTriton's stub fails under pyenv builds), the wheel built with `pip install .` reusing the
# objects of ./build, then `pytest tests/python` (binding, `python -m wenet_rt`, Triton on CPU).
#   WENET_RT_VENV   where the venv lives (default build/venv)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
missing=()
for p in python3-venv python3-dev; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
VENV=${WENET_RT_VENV:-build/venv}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
t0=$(date +%s)
"$VENV/bin/pip" install -q --disable-pip-version-check "scikit-build-core>=0.10" "nanobind>=2.0" numpy pytest \
    "nvidia-pytriton==0.7.0" "tritonclient[http,grpc]"
t1=$(date +%s)
# Same generator and options as build/ so that only the module itself is compiled; keep its tests.
CMAKE_GENERATOR="Unix Makefiles" "$VENV/bin/pip" install -q --disable-pip-version-check --no-build-isolation \
    --force-reinstall --no-deps . --config-settings=build-dir=build --config-settings=cmake.define.WENET_RT_TESTS=ON
t2=$(date +%s)
echo "python-tests: packages $((t1 - t0)) s, wheel $((t2 - t1)) s"
"$VENV/bin/python" -m pytest -q tests/python "$@"
