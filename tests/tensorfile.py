"""smelt's tensor files (docs/tensors.md) in Python, for the scripts that
make test data and read what smelt wrote: version 1 and 2 read (a version-2
record's CRC-32 checked), version 1 written (smelt reads both).

Used by tests/golden/make_golden.py, tests/onnx/*.py and bench/*.py; needs
numpy only.
"""
import struct
import zlib

import numpy as np

# smelt's dtype codes (runtime/dtype.h) and numpy's dtypes; bf16 has no numpy dtype
DTYPES = {0: np.dtype("<f4"), 1: np.dtype("<f2"), 3: np.dtype("<i4"), 4: np.dtype("<i8"),
          5: np.dtype("u1"), 6: np.dtype("?")}
CODES = {v: k for k, v in DTYPES.items()}


def read(path):
    """{name: array} of every tensor, in the file's own dtypes."""
    with open(path, "rb") as f:
        data = f.read()
    magic, version, count = struct.unpack_from("<4sII", data, 0)
    if magic != b"SMTF" or version not in (1, 2):
        raise ValueError("%s: not a smelt tensor file (version 1 or 2)" % path)
    pos, out = 12, {}
    for _ in range(count):
        start = pos
        (n,) = struct.unpack_from("<I", data, pos)
        name = data[pos + 4:pos + 4 + n].decode()
        pos += 4 + n
        code, ndim = struct.unpack_from("<II", data, pos)
        pos += 8
        dims = struct.unpack_from("<%dq" % ndim, data, pos)
        pos += 8 * ndim
        if code not in DTYPES:
            raise ValueError("%s: tensor '%s' has dtype %d, which numpy lacks" % (path, name, code))
        dtype = DTYPES[code]
        size = int(np.prod(dims)) if ndim else 1
        out[name] = np.frombuffer(data, dtype=dtype, count=size, offset=pos).reshape(dims).copy()
        pos += dtype.itemsize * size
        if version == 2:   # each record's CRC-32 follows it
            if struct.unpack_from("<I", data, pos)[0] != zlib.crc32(data[start:pos]):
                raise ValueError("%s: tensor '%s' does not match its CRC-32" % (path, name))
            pos += 4
    return out


def write(path, tensors):
    """tensors: {name: array} or a list of (name, array) pairs, each written
    in its own dtype (one of DTYPES); a version-1 file."""
    items = list(tensors.items()) if isinstance(tensors, dict) else list(tensors)
    with open(path, "wb") as f:
        f.write(struct.pack("<4sII", b"SMTF", 1, len(items)))
        for name, a in items:
            a = np.asarray(a)
            a = a.astype(a.dtype.newbyteorder("<"))   # little-endian, as smelt reads
            raw = name.encode()
            f.write(struct.pack("<I", len(raw)) + raw + struct.pack("<II", CODES[a.dtype], a.ndim))
            f.write(struct.pack("<%dq" % a.ndim, *a.shape))
            f.write(np.ascontiguousarray(a).tobytes())
