#!/usr/bin/env bash
# The main job: installs what is missing (the Fashion-MNIST dataset package included), builds kb,
# and trains the Keras mnist_cnn model on Fashion-MNIST (examples/mnist_cnn.c) on the GPU when
# there is one, else a short run on the CPU. Extra arguments go to the example
# (e.g. --epochs 3, --profile, --device cpu; --help lists them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export PATH="$PATH:/usr/local/cuda/bin"
cmake -S . -B build/release -DKB_BUILD_TESTS=OFF -DKB_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j"$(nproc 2>/dev/null || echo 2)" --target kb_mnist_cnn
./build/release/examples/kb_mnist_cnn "$@"
