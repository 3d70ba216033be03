#!/usr/bin/env bash
# The GPU verification run, in one command for the lent GPU machine (no network, no cJSON there):
#   here:  bash scripts/gpu-check.sh --prepare      # copies cJSON into .carry/ (git-ignored)
#   there: bash scripts/gpu-check.sh                # with carry=[".carry"]
# It builds against the machine's own CUDA/cuDNN, runs the whole ctest (GPU suites included),
# compute-sanitizer memcheck on the parity suite, the MLP example on CUDA, then the benchmark against
# PyTorch (scripts/bench.sh, about a minute; results in $OUT/bench). Logs go to $OUT
# when set (the device tool brings them back), else to build/gpu-logs.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--prepare" ]; then
  mkdir -p .carry/cjson/include/cjson .carry/cjson/lib
  cp /usr/include/cjson/cJSON.h .carry/cjson/include/cjson/
  cp -L /usr/lib/x86_64-linux-gnu/libcjson.so.1 .carry/cjson/lib/libcjson.so.1
  ln -sf libcjson.so.1 .carry/cjson/lib/libcjson.so
  echo "prepared .carry/cjson ($(du -sh .carry | cut -f1)); run the check with carry [\".carry\"]"
  exit 0
fi
logs=${OUT:-build/gpu-logs}
mkdir -p "$logs"
export PATH="$PATH:/usr/local/cuda/bin"
cj="$PWD/.carry/cjson"
extra=()
if [ -f "$cj/include/cjson/cJSON.h" ]; then
  extra=(-DCJSON_INCLUDE_DIR="$cj/include" -DCJSON_LIBRARY="$cj/lib/libcjson.so")
  export LD_LIBRARY_PATH="$cj/lib:${LD_LIBRARY_PATH:-}"
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$logs/gpu.txt"
cmake -S . -B build/gpu -DKB_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=native -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  "${extra[@]}" > "$logs/configure.log" 2>&1 || { tail -30 "$logs/configure.log"; exit 1; }
cmake --build build/gpu -j"$(nproc)" > "$logs/build.log" 2>&1 || { grep -E "error" "$logs/build.log" | head -30; exit 1; }
rc=0
ctest --test-dir build/gpu -j8 --output-on-failure --timeout 600 > "$logs/ctest.log" 2>&1 || rc=1
grep -E "tests passed|Failed|SEGFAULT" "$logs/ctest.log" | tail -25
KB_MEM_DEBUG=1 compute-sanitizer --tool memcheck --error-exitcode 9 build/gpu/tests/test_parity \
  > "$logs/memcheck.log" 2>&1 || rc=1
tail -3 "$logs/memcheck.log"
./build/gpu/examples/kb_mlp --device cuda --epochs 20 > "$logs/mlp.log" 2>&1 || rc=1
tail -4 "$logs/mlp.log"
# the benchmark reuses this build tree (kb_bench is built with everything above)
KB_BENCH_BUILD=build/gpu bash scripts/bench.sh "$logs/bench" > "$logs/bench.log" 2>&1 || rc=1
cat "$logs/bench/compare.txt" 2>/dev/null || tail -20 "$logs/bench.log"
exit $rc
