#!/usr/bin/env bash
# The ONNX backend conformance suite (docs/onnx.md, "Conformance"): installs
# the pinned onnx into build/onnx-venv (scripts/onnx-venv.sh), writes the
# cases into build/onnx-suite once per onnx version (tests/onnx/gen_suite.py),
# runs every case through build/smelt and compares each result with
# tests/onnx/expectations.txt (tests/onnx/conformance.py).
#
#   scripts/onnx-suite.sh              the check make test runs
#   scripts/onnx-suite.sh --update     rewrite the expectations from this run
#   scripts/onnx-suite.sh --report     also write bench/results/onnx-conformance.md and
#                                      the per-op table of docs/onnx.md
#   scripts/onnx-suite.sh --filter RE --verbose    some cases, each result printed
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
py="$("$root/scripts/onnx-venv.sh")"
suite="${ONNX_SUITE_DIR:-$root/build/onnx-suite}"
want="onnx $("$py" -c 'import onnx; print(onnx.__version__)')"
if [ "$(cat "$suite/VERSION" 2>/dev/null)" != "$want" ]; then
  "$py" "$root/tests/onnx/gen_suite.py" "$suite"
fi
args=()
for a in "$@"; do
  case "$a" in
    --report) args+=("--report=$root/bench/results/onnx-conformance.md" "--docs=$root/docs/onnx.md") ;;
    *) args+=("$a") ;;
  esac
done
exec "$py" "$root/tests/onnx/conformance.py" "$suite" --smelt="${SMELT:-$root/build/smelt}" \
  --expect="$root/tests/onnx/expectations.txt" "${args[@]}"
