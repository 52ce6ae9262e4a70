"""The safetensors files that tests/test_checkpoint_files.c reads, committed so
the tests need no Python. Run from the repository root, after `make
build/smelt-tests`:

    build/st-venv/bin/python tests/safetensors/make_st.py

(any Python with numpy and safetensors). It writes

- python.safetensors: a whole checkpoint of tiny.smelt (parameters, buffers,
  AdamW's moments, the step counter) written by safetensors.numpy, which the
  test loads into a session;
- python-params.safetensors: its parameters and buffers only, the file a
  fine-tuning run starts from;
- smelt.safetensors: the checkpoint the test writes with smelt_save (the
  script runs that test with SMELT_CHECKPOINT_OUT set), and smelt.txt: what
  safetensors.safe_open read from it (metadata, then every tensor's dtype,
  shape and values), which the test compares with the session's tensors; the
  test also checks that smelt writes smelt.safetensors again byte for byte.
"""
import os
import subprocess
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

HERE = os.path.dirname(os.path.abspath(__file__))

# tiny.smelt's persistent tensors: name -> (shape, dtype)
PARAMS = {"fc.w": (3, 2), "fc.b": (2,), "bn.g": (2,), "bn.b": (2,)}
BUFFERS = {"bn.running_mean": (2,), "bn.running_var": (2,)}


def state():
    """AdamW's two moments of each parameter and the step counter."""
    out = {}
    for name, shape in PARAMS.items():
        out[name + ".m"] = shape
        out[name + ".v"] = shape
    return out


def key(name):
    """The per-name constant of the test's values (the C test computes the same)."""
    h = 0
    for c in name.encode():
        h = (h * 31 + c) % 97
    return h


def values(name, shape, base):
    """Element i of tensor name: base + key(name) / 4 - i / 16, exact in f32."""
    n = int(np.prod(shape))
    return (base + key(name) * 0.25 - np.arange(n) * 0.0625).reshape(shape).astype("<f4")


def main():
    names = list(PARAMS) + list(BUFFERS) + list(state())
    assert len({key(n) for n in names}) == len(names), "two tensors would hold the same values"
    shapes = {**PARAMS, **BUFFERS, **state()}
    full = {n: values(n, s, -1.0) for n, s in shapes.items()}
    full["step"] = np.array(42, dtype="<i8")
    save_file(full, os.path.join(HERE, "python.safetensors"), metadata={"written_by": "safetensors.numpy"})
    weights = {n: values(n, s, -1.0) for n, s in {**PARAMS, **BUFFERS}.items()}
    save_file(weights, os.path.join(HERE, "python-params.safetensors"))

    out = os.path.join(HERE, "smelt.safetensors")
    env = dict(os.environ, SMELT_CHECKPOINT_OUT=out, NO_COLOR="1", SMELT_PATH="")
    subprocess.run(["build/smelt-tests", "--filter", "stfiles/python_reads_what_smelt_writes"], env=env, check=True)
    with safe_open(out, "np") as f, open(os.path.join(HERE, "smelt.txt"), "w") as txt:
        meta = f.metadata()
        for k in ("smelt.model", "smelt.step"):
            txt.write("metadata %s %s\n" % (k, meta[k]))
        for name in f.keys():
            a = f.get_tensor(name)
            dims = ",".join(str(d) for d in a.shape)
            vals = " ".join(repr(v.item()) for v in a.reshape(-1))
            txt.write("tensor %s %s %s %s\n" % (name, a.dtype.name, dims or "-", vals))
    print("wrote python.safetensors, python-params.safetensors, smelt.safetensors, smelt.txt", file=sys.stderr)


if __name__ == "__main__":
    main()
