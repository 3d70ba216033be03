#!/usr/bin/env bash
# Builds and tests kb on a fresh machine: installs what is missing, then
#   1. CPU-only build, warnings as errors, full suite;
#   2. CPU-only build under AddressSanitizer + UndefinedBehaviorSanitizer, CPU suite;
#   3. CUDA build when nvcc is present (GPU suites skip visibly without a GPU).
# KB_CUDA_ARCHS overrides the CUDA architectures (CI: 90). Build trees go to build/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
jobs=$(nproc 2>/dev/null || echo 2)
export PATH="$PATH:/usr/local/cuda/bin"
export CTEST_OUTPUT_ON_FAILURE=1

echo "== kb: CPU-only build =="
cmake -S . -B build/cpu -DKB_CUDA=OFF -DKB_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/cpu -j"$jobs"
ctest --test-dir build/cpu -j"$jobs" --timeout 600

echo "== kb: CPU-only build with ASan + UBSan =="
cmake -S . -B build/asan -DKB_CUDA=OFF -DKB_SANITIZE=ON -DKB_BUILD_EXAMPLES=OFF -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build/asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build/asan -j"$jobs" -L cpu --timeout 900

if command -v nvcc >/dev/null 2>&1; then
  echo "== kb: CUDA build =="
  cmake -S . -B build/cuda -DKB_CUDA=ON -DKB_WERROR=ON -DCMAKE_CUDA_ARCHITECTURES="${KB_CUDA_ARCHS:-80;90}" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build/cuda -j"$jobs"
  ctest --test-dir build/cuda -j"$jobs" --timeout 900
else
  echo "== kb: nvcc not found: CUDA build skipped =="
fi
