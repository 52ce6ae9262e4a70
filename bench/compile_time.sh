#!/bin/bash
# Compile time of smelt build, alternating two compilers: BASE (no build
# cache) and NEW, cold (an empty cache before each run), warm (the cache of
# the same build) and, for GPT-2 small, warm from examples/gpt.smelt while
# building bench/models/gpt_wide_last.smelt (one layer's MLP wider).
# Prints one line per run: row, build, wall seconds.
#
# Usage: bench/compile_time.sh BASE NEW RUNS [ROW...]
#   rows: mlp lstm gpt90 gpt2 gpt2wide (default: all)
set -u
BASE=$1 NEW=$2 RUNS=$3
shift 3
ROWS=${*:-mlp lstm gpt90 gpt2 gpt2wide}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
GPT2="-D B=8 -D T=1024 -D V=50257 -D C=768 -D L=12 -D H=12 --max-memory=0"
args() {
  case $1 in
    mlp) echo "examples/mlp.smelt" ;;
    lstm) echo "examples/lstm.smelt" ;;
    gpt90) echo "examples/gpt.smelt --target=sm_90" ;;
    gpt2|gpt2wide) echo "examples/gpt.smelt $GPT2" ;;
  esac
}
timed() {   # label, then the command; prints label and wall seconds
  local label=$1
  shift
  local t0 t1
  t0=$(date +%s.%N)
  "$@" > "$W/log" 2>&1 || { echo "$label FAILED"; cat "$W/log"; }
  t1=$(date +%s.%N)
  echo "$label $(echo "$t1 - $t0" | bc)"
}
for row in $ROWS; do
  a=$(args "$row")
  for r in $(seq "$RUNS"); do
    if [ "$row" = gpt2wide ]; then
      rm -rf "$W/xdg" && XDG_CACHE_HOME=$W/xdg $NEW build $a -o "$W/x.ingot" > /dev/null 2>&1
      timed "$row new-warm-changed" env XDG_CACHE_HOME="$W/xdg" $NEW build bench/models/gpt_wide_last.smelt $GPT2 -o "$W/x.ingot"
      timed "$row base" $BASE build bench/models/gpt_wide_last.smelt $GPT2 -o "$W/x.ingot"
      continue
    fi
    timed "$row base" $BASE build $a -o "$W/x.ingot"
    rm -rf "$W/xdg"
    timed "$row new-cold" env XDG_CACHE_HOME="$W/xdg" $NEW build $a -o "$W/x.ingot"
    timed "$row new-warm" env XDG_CACHE_HOME="$W/xdg" $NEW build $a -o "$W/x.ingot"
  done
done
