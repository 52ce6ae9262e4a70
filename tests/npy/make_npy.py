"""The NumPy files that tests/test_tensorfile.c reads (committed, so the
tests need no Python): run `python3 tests/npy/make_npy.py` from the
repository root to write them again. Needs numpy only."""
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def path(name):
    return os.path.join(HERE, name)


def main():
    # one array of each dtype smelt has; values the test checks
    arrays = {
        "f32": (np.arange(6, dtype="<f4").reshape(2, 3) - 2.5),
        "f16": np.array([0.5, -1.25, 65504.0], dtype="<f2"),
        "i32": np.array([[1, -2], [3, 2147483647]], dtype="<i4"),
        "i64": np.array([-(2 ** 40), 7], dtype="<i8"),
        "u8": np.array([0, 255, 7], dtype="u1"),
        "b1": np.array([True, False, True]),
        "scalar": np.array(3.5, dtype="<f4"),
    }
    for name, a in arrays.items():
        np.save(path(name + ".npy"), a)
    np.savez(path("all.npz"), **arrays)
    np.savez_compressed(path("compressed.npz"), x=arrays["f32"])
    with open(path("f32.npy"), "rb") as f:
        whole = f.read()
    with open(path("truncated.npy"), "wb") as f:   # the last value cut off
        f.write(whole[:-3])
    # version 2 and 3 headers (numpy writes them only when needed: forced here)
    for version in ((2, 0), (3, 0)):
        with open(path("v%d.npy" % version[0]), "wb") as f:
            np.lib.format.write_array(f, arrays["f32"], version=version)
    np.save(path("fortran.npy"), np.asfortranarray(np.arange(6, dtype="<f4").reshape(2, 3)))
    np.save(path("bigendian.npy"), np.arange(3, dtype=">f4"))
    np.save(path("f64.npy"), np.arange(3, dtype="<f8"))


if __name__ == "__main__":
    main()
