#!/usr/bin/env bash
# The GPU check in about 40 s of device time: build here, run there (no build on the GPU machine).
#   here:  bash scripts/gpu-quick.sh --prepare   # CUDA build (sm_90) of the suites and kb_bench,
#                                                # stripped + xz'd into .carry/gpu.tar.xz (~50 MB)
#   there: bash scripts/gpu-quick.sh             # device tool, carry [".carry"]
# The examples (issue 6): the CNN to its accuracy goal, its profile and trace, the CTC example,
# the training-step bench rows, and a memcheck of a short CNN run:
#   here:  bash scripts/gpu-quick.sh --prepare-cnn   # libkb.so + examples + kb_bench (xz) and the
#                                                    # Fashion-MNIST files in .carry/ (~45 MB)
#   there: bash scripts/gpu-quick.sh --cnn           # carry [".carry/cnn.tar.xz", ".carry/fashion-mnist", ".carry/cjson"]
# There it runs the parity suite, the GPU-heavy suites and the benchmark against PyTorch, logs in
# $OUT. The binaries link the GPU machine's own cuDNN (9.14) although built against 9.19 headers:
# seen working on 2026-12-04, but not promised by NVIDIA; scripts/gpu-check.sh builds there instead.
set -uo pipefail
cd "$(dirname "$0")/.."
suites=(test_parity test_rnn test_conv test_control test_ctc test_random test_mlp test_function)
# here: cJSON for the GPU machine, and the CUDA build tree (sm_90)
configure_here() {
  set -e
  bash scripts/gpu-check.sh --prepare >/dev/null
  export PATH="$PATH:/usr/local/cuda/bin"
  cmake -S . -B build/cuda -DKB_CUDA=ON -DKB_WERROR=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
}
if [ "${1:-}" = "--prepare" ]; then
  configure_here
  cmake --build build/cuda --target kb kb_bench "${suites[@]}" -j"$(nproc)"
  pack=$(mktemp -d)
  mkdir -p "$pack/bin" "$pack/lib"
  for t in "${suites[@]}"; do strip -o "$pack/bin/$t" "build/cuda/tests/$t"; done
  strip -o "$pack/bin/kb_bench" build/cuda/bench/kb_bench
  strip -o "$pack/lib/libkb.so.0" "$(readlink -f build/cuda/libkb.so.0)"
  tar -C "$pack" -cf - bin lib | xz -T0 -6 > .carry/gpu.tar.xz
  rm -rf "$pack"
  echo "prepared .carry ($(du -sh .carry | cut -f1)); run: bash scripts/gpu-quick.sh with carry [\".carry\"]"
  exit 0
fi
if [ "${1:-}" = "--prepare-cnn" ]; then
  configure_here
  cmake --build build/cuda --target kb kb_mnist_cnn kb_ctc_seq kb_bench -j"$(nproc)"
  pack=$(mktemp -d)
  mkdir -p "$pack/bin" "$pack/lib" .carry/fashion-mnist
  for b in examples/kb_mnist_cnn examples/kb_ctc_seq bench/kb_bench; do strip -o "$pack/bin/${b#*/}" "build/cuda/$b"; done
  strip -o "$pack/lib/libkb.so.0" "$(readlink -f build/cuda/libkb.so.0)"
  tar -C "$pack" -cf - bin lib | xz -T0 -6 > .carry/cnn.tar.xz
  rm -rf "$pack"
  cp /usr/share/datasets/fashion-mnist/*-ubyte.gz .carry/fashion-mnist/
  echo "prepared .carry ($(du -sh .carry/cnn.tar.xz .carry/fashion-mnist | tr '\n' ' '))"
  exit 0
fi
out=${OUT:-build/gpu-logs}
# there: unpack bundle $1 into $2, point the loader at it and cJSON, say which GPU
unpack_there() {
  mkdir -p "$out" "$2" /tmp/kb-keras
  tar -C "$2" -xJf "$1" || exit 1
  export LD_LIBRARY_PATH="$2/lib:$PWD/.carry/cjson/lib:${LD_LIBRARY_PATH:-}"
  export KERAS_HOME=/tmp/kb-keras PYTHONUNBUFFERED=1
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; date -u
}
rc=0
if [ "${1:-}" = "--cnn" ]; then
  unpack_there .carry/cnn.tar.xz /tmp/kb-cnn
  bin=/tmp/kb-cnn/bin data=.carry/fashion-mnist
  # the README's default run: 12 epochs, the issue's 91% goal
  timeout 300 $bin/kb_mnist_cnn --data $data --expect-accuracy 0.91 > "$out/cnn_default.log" 2>&1 || rc=1
  grep -v "^epoch .*\[" "$out/cnn_default.log" | tail -16
  timeout 120 $bin/kb_mnist_cnn --data $data --epochs 1 --train-limit 12800 --profile --trace "$out/cnn_trace.json" \
    > "$out/cnn_profile.log" 2>&1 || rc=1
  sed -n '/kb profile/,$p' "$out/cnn_profile.log" | head -40
  timeout 120 $bin/kb_ctc_seq --device cuda > "$out/ctc_seq.log" 2>&1 || rc=1
  tail -4 "$out/ctc_seq.log"
  timeout 120 $bin/kb_bench --rows cnn_nhwc,cnn_nchw --json "$out/kb.json" > "$out/kb_bench.txt" 2>&1 || rc=1
  timeout 120 python3 bench/torch_bench.py --rows cnn_nhwc,cnn_nchw --json "$out/torch.json" > "$out/torch.txt" 2>&1
  python3 bench/compare.py "$out/kb.json" "$out/torch.json" 2>&1
  if command -v compute-sanitizer >/dev/null; then
    timeout 200 compute-sanitizer --tool memcheck --error-exitcode 9 $bin/kb_mnist_cnn --data $data --epochs 1 \
      --train-limit 512 --test-limit 500 > "$out/cnn_memcheck.log" 2>&1 || rc=1
    tail -3 "$out/cnn_memcheck.log"
  fi
  exit $rc
fi
unpack_there .carry/gpu.tar.xz /tmp/kb-gpu
mkdir -p "$out/bench"
run_suites() {
  for t in "$@"; do
    timeout 60 /tmp/kb-gpu/bin/$t --gtest_brief=1 > "$out/$t.log" 2>&1 || rc=1
    echo "$t: $(grep -E "PASSED  \]|FAILED  \] [0-9]|SKIPPED \]" "$out/$t.log" | tr '\n' ' ')"
    grep -E "^\[  FAILED  \] .*," "$out/$t.log" | head -20
  done
}
run_suites test_parity test_rnn
KB_RNN_RECOMPUTE=1 timeout 30 /tmp/kb-gpu/bin/test_rnn --gtest_brief=1 > "$out/test_rnn_recompute.log" 2>&1 || rc=1
echo "test_rnn (KB_RNN_RECOMPUTE=1): $(grep -E "PASSED  \]|FAILED  \] [0-9]" "$out/test_rnn_recompute.log" | tr '\n' ' ')"
timeout 120 /tmp/kb-gpu/bin/kb_bench --iters 10 --json "$out/bench/kb.json" > "$out/bench/kb.txt" 2>&1 || rc=1
timeout 120 python3 bench/torch_bench.py --iters 10 --json "$out/bench/torch.json" > "$out/bench/torch.txt" 2>&1
python3 bench/compare.py "$out/bench/kb.json" "$out/bench/torch.json" --markdown > "$out/bench/compare.md" 2>&1
python3 bench/compare.py "$out/bench/kb.json" "$out/bench/torch.json" 2>&1
run_suites test_conv test_control test_ctc test_random test_mlp test_function
exit $rc
