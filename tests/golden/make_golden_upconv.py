#!/usr/bin/env python3
"""Writes the PyTorch goldens of transposed convolution and upsampling that
tests/test_golden.c compares smelt's interpreter against.

Each case stores its options as a tensor (case<i>:opts), the inputs x (and
the kernel w), an output gradient dy, and what PyTorch computes: y, and the
gradients dx (and dw) of sum(y * dy). Sizes are odd and small; the options
cover stride 2 and 3, padding, output_padding (also at or above the stride,
which needs dilation), dilation 2, groups 2 and depthwise; upsampling covers
both modes, unequal scales, size-1 inputs and long rows (where PyTorch's f32
source positions are inexact).

The tests need only the committed .golden files. To regenerate:

    python3 tests/golden/make_golden_upconv.py

(make_golden.py's tensor-file writer; everything in float32 on the CPU.)
"""
import os

import numpy as np
import torch
import torch.nn.functional as F

from make_golden import OUT, write_tensors

# (x shape, w shape, stride, padding, output_padding, dilation, groups, value scale)
CONV_TRANSPOSE = [
    ((2, 3, 5, 7), (3, 4, 3, 3), (2, 2), (1, 1), (1, 1), (1, 1), 1, 1.0),
    ((1, 4, 4, 5), (4, 3, 3, 2), (3, 2), (1, 0), (2, 1), (1, 1), 2, 1.0),
    ((2, 2, 5, 3), (2, 3, 3, 3), (1, 1), (1, 1), (1, 1), (2, 2), 1, 1.0),
    ((2, 6, 5, 5), (6, 1, 3, 3), (2, 2), (1, 1), (1, 1), (1, 1), 6, 1.0),
    ((1, 3, 4, 4), (3, 2, 4, 4), (2, 2), (1, 1), (0, 0), (1, 1), 1, 1000.0),
    ((1, 4, 3, 5), (4, 2, 2, 3), (3, 3), (0, 2), (2, 0), (2, 1), 2, 1.0),
]

# (x shape, scale, mode)
UPSAMPLE = [
    ((2, 3, 5, 7), (2, 2), "nearest"),
    ((1, 2, 3, 4), (3, 2), "nearest"),
    ((2, 3, 5, 7), (2, 2), "bilinear"),
    ((1, 2, 3, 4), (3, 2), "bilinear"),
    ((1, 1, 1, 5), (3, 3), "bilinear"),
    ((1, 1, 9, 11), (4, 4), "bilinear"),
    ((1, 1, 2, 333), (1, 3), "bilinear"),
]


def draw(rng, shape, scale=1.0):
    v = rng.uniform(-1, 1, size=shape).astype(np.float32) * np.float32(scale)
    v.flat[::7] = 0   # exact zeros
    return v


def conv_transpose(rng):
    out = {}
    for i, (xs, ws, st, pad, op, dil, groups, scale) in enumerate(CONV_TRANSPOSE):
        x = torch.tensor(draw(rng, xs, scale), requires_grad=True)
        w = torch.tensor(draw(rng, ws), requires_grad=True)
        y = F.conv_transpose2d(x, w, stride=st, padding=pad, output_padding=op, groups=groups, dilation=dil)
        dy = torch.tensor(draw(rng, tuple(y.shape)))
        (y * dy).sum().backward()
        p = "case%d:" % i
        out[p + "opts"] = np.array(st + pad + op + dil + (groups,), dtype=np.float32)
        out[p + "x"], out[p + "w"], out[p + "dy"] = x.detach().numpy(), w.detach().numpy(), dy.numpy()
        out[p + "y"], out[p + "dx"], out[p + "dw"] = y.detach().numpy(), x.grad.numpy(), w.grad.numpy()
    write_tensors(os.path.join(OUT, "conv_transpose.golden"), out)
    print("wrote conv_transpose.golden: %d cases" % len(CONV_TRANSPOSE))


def upsample(rng):
    out = {}
    for i, (xs, scale, mode) in enumerate(UPSAMPLE):
        x = torch.tensor(draw(rng, xs), requires_grad=True)
        y = F.interpolate(x, scale_factor=scale, mode=mode, **({"align_corners": False} if mode == "bilinear" else {}))
        dy = torch.tensor(draw(rng, tuple(y.shape)))
        (y * dy).sum().backward()
        p = "case%d:" % i
        out[p + "opts"] = np.array(scale + (1 if mode == "bilinear" else 0,), dtype=np.float32)
        out[p + "x"], out[p + "dy"] = x.detach().numpy(), dy.numpy()
        out[p + "y"], out[p + "dx"] = y.detach().numpy(), x.grad.numpy()
    write_tensors(os.path.join(OUT, "upsample.golden"), out)
    print("wrote upsample.golden: %d cases" % len(UPSAMPLE))


def main():
    torch.set_num_threads(1)
    rng = np.random.default_rng(20261201)
    conv_transpose(rng)
    upsample(rng)


if __name__ == "__main__":
    main()
