#!/usr/bin/env bash
# Installs the Debian packages wenet-rt builds against. Idempotent; needs root (or sudo).
set -euo pipefail
PKGS=(cmake g++ make pkg-config
      libyaml-cpp-dev nlohmann-json3-dev libzip-dev libfmt-dev libcli11-dev
      libopenblas-dev libgtest-dev libgmock-dev libsndfile1-dev libsoxr-dev libkissfft-dev libboost-dev)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
