#!/usr/bin/env bash
# The main job: installs what is missing, builds kb, and trains the example model on the GPU when
# there is one, else on the CPU. Extra arguments go to the example (e.g. --epochs 10).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export PATH="$PATH:/usr/local/cuda/bin"
cmake -S . -B build/release -DKB_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j"$(nproc 2>/dev/null || echo 2)" --target kb_mlp
./build/release/examples/kb_mlp "$@"
