#!/usr/bin/env python3
"""Writes tests/golden/torch.safetensors, a file made by the safetensors
library itself, which tests/test_tensorfile.c reads: every dtype smelt has,
a scalar, an empty tensor, a name that needs escapes, and metadata.

The test needs only the committed file. To regenerate (Debian's python3-torch
and safetensors from PyPI in a virtual environment):

    /usr/bin/python3 -m venv --system-site-packages build/st-venv
    build/st-venv/bin/pip install safetensors==0.4.5
    build/st-venv/bin/python tests/golden/make_safetensors.py

With an argument, it instead reads that file with the library and prints
each tensor, to check a file smelt wrote.
"""
import os
import sys

import torch
from safetensors.torch import load_file, save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch.safetensors")

if len(sys.argv) > 1:
    for name, t in sorted(load_file(sys.argv[1]).items()):
        print(name, t.dtype, list(t.shape), t.flatten()[:6].tolist())
    sys.exit(0)

tensors = {
    "ramp": torch.arange(12, dtype=torch.float32).reshape(3, 4) * 0.5 - 1.0,
    "special": torch.tensor([0.0, -0.0, float("inf"), float("-inf"), 1e-45, 3.4028234663852886e38]),
    "half": torch.tensor([1.0, -2.5, 65504.0, 6e-8], dtype=torch.float16),
    "brain": torch.tensor([1.0, -3.140625, 1e30], dtype=torch.bfloat16),
    "ids": torch.tensor([[0, -1], [2147483647, -2147483648]], dtype=torch.int32),
    "longs": torch.tensor([1 << 40, -5], dtype=torch.int64),
    "bytes": torch.tensor([0, 255, 7], dtype=torch.uint8),
    "mask": torch.tensor([True, False, True]),
    "scalar": torch.tensor(2.5),
    "empty": torch.zeros(0, 3),
    'layer.0/"w"\u00e9': torch.tensor([[1.0], [2.0]]),
}
save_file(tensors, OUT, metadata={"format": "pt", "note": "smelt test"})
print("wrote", OUT)
