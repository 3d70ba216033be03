#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages kb needs when they are missing (nothing else is fetched),
# and dataset-fashion-mnist, the data of the main example (examples/mnist_cnn.c).
# The CUDA toolkit and cuDNN are optional: without nvcc kb builds CPU-only.
set -euo pipefail
pkgs=(cmake make g++ pkg-config libcjson-dev libgtest-dev libopenblas-dev zlib1g-dev dataset-fashion-mnist)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "kb: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi
