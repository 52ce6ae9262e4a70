#!/usr/bin/env bash
# Installs the pinned onnx package into build/onnx-venv, for regenerating the
# ONNX test models (tests/onnx/make_models.py). make test does not need it:
# the generated models and their expected outputs are committed.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/build/onnx-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import onnx, sys; sys.exit(onnx.__version__ != "1.17.0")' 2>/dev/null; then
  "$venv/bin/pip" install --quiet "onnx==1.17.0" "numpy<2.3"
fi
echo "$venv/bin/python"
