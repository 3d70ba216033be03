#!/usr/bin/env bash
# The benchmark in one command: build kb_bench (incrementally), run it, run the same table in
# PyTorch when torch is importable, and print the kb/PyTorch ratios against the issue's goals.
#   bash scripts/bench.sh [OUTDIR] [kb_bench/torch_bench flags...]
# OUTDIR (default build/bench) receives kb.json, kb.txt, torch.json, torch.txt and compare.txt.
# Flags after OUTDIR go to both programs, e.g. `bash scripts/bench.sh /tmp/b --device cpu --small`.
# KB_BENCH_BUILD names the build tree to use (default build/bench-build, configured Release on
# first use; scripts/gpu-check.sh passes its own). Exit status: 1 when a kb row failed or gave a
# wrong value; goals not met are reported, not failures (a benchmark is not a test).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/bench}
[ $# -gt 0 ] && shift
build=${KB_BENCH_BUILD:-build/bench-build}
mkdir -p "$out"
export PATH="$PATH:/usr/local/cuda/bin"

if [ ! -f "$build/CMakeCache.txt" ]; then
  cfg=(-DCMAKE_BUILD_TYPE=Release -DKB_BUILD_TESTS=OFF -DKB_BUILD_EXAMPLES=OFF)
  # the GPU machine has no cJSON of its own: scripts/gpu-check.sh --prepare carries it in .carry/
  cj="$PWD/.carry/cjson"
  if [ -f "$cj/include/cjson/cJSON.h" ]; then
    cfg+=(-DCJSON_INCLUDE_DIR="$cj/include" -DCJSON_LIBRARY="$cj/lib/libcjson.so")
  fi
  if nvidia-smi -L >/dev/null 2>&1; then cfg+=(-DCMAKE_CUDA_ARCHITECTURES=native); fi
  cmake -S . -B "$build" "${cfg[@]}" > "$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
fi
if [ -d "$PWD/.carry/cjson/lib" ]; then export LD_LIBRARY_PATH="$PWD/.carry/cjson/lib:${LD_LIBRARY_PATH:-}"; fi
cmake --build "$build" --target kb_bench -j"$(nproc 2>/dev/null || echo 2)" > "$out/build.log" 2>&1 \
  || { grep -E "error" "$out/build.log" | head -30; exit 1; }

rc=0
"$build/bench/kb_bench" --json "$out/kb.json" "$@" 2>&1 | tee "$out/kb.txt" || rc=1
if python3 -c "import torch" >/dev/null 2>&1; then
  python3 bench/torch_bench.py --json "$out/torch.json" "$@" 2>&1 | tee "$out/torch.txt" || rc=1
else
  echo "bench: PyTorch not importable here: kb figures only, no ratios" | tee "$out/torch.txt"
  rm -f "$out/torch.json"
fi
python3 bench/compare.py "$out/kb.json" "$out/torch.json" 2>&1 | tee "$out/compare.txt" || rc=1
python3 bench/compare.py "$out/kb.json" "$out/torch.json" --markdown > "$out/compare.md" 2>/dev/null
exit $rc
