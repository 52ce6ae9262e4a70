#!/usr/bin/env bash
# Installs the pinned onnx package into build/onnx-venv and prints its python:
# the ONNX conformance suite (scripts/onnx-suite.sh, run by make test)
# generates and reads its cases with it, and tests/onnx/make_models.py
# regenerates the committed test models with it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/build/onnx-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import onnx, sys; sys.exit(onnx.__version__ != "1.23.2")' 2>/dev/null; then
  "$venv/bin/pip" install --quiet "onnx==1.23.2" "numpy<2.3"
fi
echo "$venv/bin/python"
