#!/usr/bin/env bash
# The GPU check (../shared/PERF.md): build here, run on a GPU host.
#
#   scripts/gpu-check.sh pack         build everything a GPU host needs into
#                                     build/gpu-pack (no LLVM needed there), as
#                                     one xz archive that run unpacks
#   scripts/gpu-check.sh run OUTDIR   on the GPU host, from the repository root:
#                                     numerics of every kernel kind against the
#                                     CPU device, the MLP trained for an epoch,
#                                     and the benchmark table; logs and
#                                     summary.md go to OUTDIR
#
# GPU_ARCH (default sm_90) selects the cubin's architecture; PTX for it rides
# along for the driver's JIT.
set -euo pipefail

PACK=build/gpu-pack
ARCH=${GPU_ARCH:-sm_90}
DATA=/usr/share/datasets/fashion-mnist

pack() {
  make -s all
  rm -rf "$PACK"
  mkdir -p "$PACK/ingots" "$PACK/bench" "$PACK/data"
  cp build/smelt-rt "$PACK/"
  local f
  # the kernel suite fused (as shipped) and one kernel per op (each op alone)
  for f in tests/gpu/*.smelt; do
    build/smelt build "$f" --target="$ARCH" -o "$PACK/ingots/$(basename "$f" .smelt).ingot"
    build/smelt build "$f" --target="$ARCH" --fusion=none -o "$PACK/ingots/$(basename "$f" .smelt)-unfused.ingot"
  done
  build/smelt build examples/mlp.smelt --target="$ARCH" -o "$PACK/mlp.ingot"
  # batch-1 inference, for launch overhead with and without graphs
  build/smelt build examples/mlp.smelt -D B=1 --target="$ARCH" -o "$PACK/bench/mlp_b1.ingot"
  # the GPT and LSTM training steps at small sizes, as kernel tests
  build/smelt build examples/gpt.smelt -D B=4 -D T=32 -D C=64 -D L=1 -D H=4 --target="$ARCH" -o "$PACK/ingots/gpt.ingot"
  build/smelt build examples/lstm.smelt -D B=8 -D T=8 -D E=32 -D H=64 --target="$ARCH" -o "$PACK/ingots/lstm.ingot"
  for f in bench/gpu/*.smelt; do
    build/smelt build "$f" --target="$ARCH" -o "$PACK/bench/$(basename "$f" .smelt).ingot"
  done
  # the f32 matmul again under the tf32 policy (tensor cores, m16n8k8)
  build/smelt build bench/gpu/matmul.smelt --precision=tf32 --target="$ARCH" -o "$PACK/bench/matmul_tf32.ingot"
  # the small GPT's training step in fp32 and bf16, for step times
  local p
  for p in fp32 bf16; do
    build/smelt build examples/gpt.smelt -D B=8 -D T=128 -D C=256 -D L=4 -D H=8 --precision=$p --target="$ARCH" \
      -o "$PACK/bench/gpt_$p.ingot"
  done
  for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
    cp "$DATA/$f" "$PACK/data/"
  done
  git rev-parse --short HEAD > "$PACK/commit" 2>/dev/null || echo unknown > "$PACK/commit"
  local raw commit
  raw=$(du -sh "$PACK" | cut -f1)
  commit=$(cat "$PACK/commit")
  # what travels to a GPU host is at most 64 MiB with the source tree: the
  # pack goes as one xz archive, which run unpacks in place
  tar -C "$PACK" -cf - . | xz -6 -T2 > "$PACK.tar.xz"
  rm -rf "$PACK" && mkdir -p "$PACK" && mv "$PACK.tar.xz" "$PACK/pack.tar.xz"
  local mib=$(( $(stat -c %s "$PACK/pack.tar.xz") / 1048576 ))
  echo "packed $raw (${mib} MiB as $PACK/pack.tar.xz) (commit $commit, $ARCH)"
  if [ "$mib" -ge 58 ]; then
    echo "the pack is over 58 MiB: with the source tree it would not fit in the 64 MiB a GPU host takes" >&2
    exit 1
  fi
}

run() {
  local out=${1:?usage: scripts/gpu-check.sh run OUTDIR}
  mkdir -p "$out"
  if [ ! -x "$PACK/smelt-rt" ] && [ -f "$PACK/pack.tar.xz" ]; then
    xz -dc "$PACK/pack.tar.xz" | tar -C "$PACK" -xf -
  fi
  [ -x "$PACK/smelt-rt" ] || { echo "no pack at $PACK: run 'scripts/gpu-check.sh pack' first" >&2; exit 1; }
  local rt="$PACK/smelt-rt" status=0
  local t0=$SECONDS
  { nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true; } > "$out/card.txt" 2>&1
  echo "== card: $(cat "$out/card.txt")"
  # the trainer reads the data where the model file says, as on a Debian host
  if [ ! -f "$DATA/train-images-idx3-ubyte.gz" ]; then
    mkdir -p "$DATA" && cp "$PACK"/data/*.gz "$DATA/"
  fi

  echo "== numerics: every kernel against the CPU device"
  local f
  : > "$out/numerics.log"
  for f in "$PACK"/ingots/*.ingot; do
    if ! timeout 120 "$rt" check "$f" --device=cuda >> "$out/numerics.log" 2>&1; then status=1; fi
    tail -1 "$out/numerics.log"
  done

  echo "== training the MLP for one epoch"
  timeout 180 "$rt" train "$PACK/mlp.ingot" --device=cuda --epochs=1 > "$out/train.log" 2>&1 || status=1
  tail -3 "$out/train.log"
  timeout 60 "$rt" profile "$PACK/mlp.ingot" --device=cuda --entry=train_step > "$out/profile.txt" 2>&1 || status=1
  echo "== CUDA graphs: the same epoch, and batch-1 inference, with kernels launched one by one"
  timeout 180 "$rt" train "$PACK/mlp.ingot" --device=cuda --epochs=1 --no-graphs > "$out/train-nographs.log" 2>&1 || status=1
  tail -1 "$out/train-nographs.log"
  { timeout 60 "$rt" latency "$PACK/bench/mlp_b1.ingot" --device=cuda --runs=2000 &&
    timeout 60 "$rt" latency "$PACK/bench/mlp_b1.ingot" --device=cuda --runs=2000 --no-graphs; } > "$out/graphs.log" 2>&1 || status=1
  cat "$out/graphs.log"

  echo "== benchmarks"
  timeout 120 "$rt" bench "$PACK"/bench/pointwise.ingot "$PACK"/bench/reduce.ingot "$PACK"/bench/matmul.ingot \
    --device=cuda > "$out/bench.md" 2>&1 || status=1
  local mm
  for mm in matmul_bf16 matmul_tf32; do
    timeout 60 "$rt" bench "$PACK/bench/$mm.ingot" --device=cuda > "$out/bench-$mm.md" 2>&1 || status=1
  done
  for p in fp32 bf16; do
    timeout 90 "$rt" profile "$PACK/bench/gpt_$p.ingot" --device=cuda --entry=train_step --runs=20 \
      > "$out/gpt-$p.txt" 2>&1 || status=1
  done
  timeout 240 python3 bench/gpu_torch.py "$DATA" > "$out/torch.log" 2>&1 || echo "torch=failed" >> "$out/torch.log"

  python3 scripts/gpu_summary.py "$out" "$(cat "$PACK/commit")" "$ARCH" > "$out/summary.md" || status=1
  echo "== done in $((SECONDS - t0)) s"
  cat "$out/summary.md"
  return $status
}

case "${1:-}" in
  pack) pack ;;
  run) shift; run "$@" ;;
  *) echo "usage: scripts/gpu-check.sh pack | run OUTDIR" >&2; exit 2 ;;
esac
