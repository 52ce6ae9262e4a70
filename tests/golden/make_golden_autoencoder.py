#!/usr/bin/env python3
"""Writes the PyTorch goldens of examples/autoencoder.smelt that
tests/test_golden.c compares smelt's interpreter against.

At tiny sizes (B = 2, C1 = 2, C2 = 3) from `smelt init`'s weights:
autoencoder.golden holds the reconstruction, the loss and the gradient of
every parameter; autoencoder_adam.golden one step of torch.optim.Adam with
the example's train block (lr = 2e-3, betas (0.9, 0.999), eps 1e-8, no weight
decay; the schedule is constant) and the weights after it.

The images are the model's only input and its own target. They hold exact
zeros and ones (the ends of the [0, 1] range a scaled idx file gives) and
runs of zeros, as Fashion-MNIST's black borders: the first convolution then
sees all-zero patches, where relu's input is its (zero) bias alone.

The tests need only the committed .golden files. To regenerate:

    make && /usr/bin/python3 tests/golden/make_golden_autoencoder.py

(make_golden.py's helpers; everything in float32 on the CPU.)
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

from make_golden import OUT, SMELT, golden, read_tensors, smelt_init, write_tensors

SIZES = {"B": 2, "C1": 2, "C2": 3}
LR, BETAS, EPS = 2e-3, (0.9, 0.999), 1e-8


def autoencoder(p, x):
    """examples/autoencoder.smelt; smelt's transposed-convolution weight is
    (Cin, Cout, k, k), PyTorch's layout."""
    h = torch.relu(F.conv2d(x, p["enc1.w"], p["enc1.b"], stride=2, padding=1))
    h = torch.relu(F.conv2d(h, p["enc2.w"], p["enc2.b"], stride=2, padding=1))
    h = torch.relu(F.conv_transpose2d(h, p["dec1.w"], p["dec1.b"], stride=2, padding=1, output_padding=1))
    recon = torch.sigmoid(F.conv_transpose2d(h, p["dec2.w"], p["dec2.b"], stride=2, padding=1, output_padding=1))
    return recon, F.mse_loss(recon, x)


def images(rng, batch):
    x = rng.random((batch, 1, 28, 28), dtype=np.float32)
    x[:, :, :4, :] = 0           # black borders: all-zero patches
    x[:, :, :, -3:] = 0
    x[0, 0, 10:14, 10:16] = 1    # saturated
    x.flat[::11] = 0
    return x


def adam_step(weights, x, name):
    params = {k: torch.tensor(v, requires_grad=True) for k, v in weights.items()}
    opt = torch.optim.Adam(params.values(), lr=LR, betas=BETAS, eps=EPS, weight_decay=0)
    out = {"param:" + k: v for k, v in weights.items()}
    out["batch0:x"] = x
    opt.zero_grad()
    _, loss = autoencoder(params, torch.tensor(x))
    loss.backward()
    opt.step()
    out["loss0"] = loss.detach().numpy()
    for k, v in params.items():
        out["final:" + k] = v.detach().numpy()
    write_tensors(os.path.join(OUT, name + ".golden"), out)
    print("wrote %s.golden: loss %.6f" % (name, loss.item()))


def main():
    if not os.path.exists(SMELT):
        sys.exit("build smelt first: make")
    torch.set_num_threads(1)
    rng = np.random.default_rng(20261203)
    w = smelt_init("autoencoder", SIZES)
    assert sorted(w) == sorted(s + "." + t for s in ("enc1", "enc2", "dec1", "dec2") for t in "wb"), sorted(w)
    # smelt's biases start at zero, so an all-zero patch gives relu an input
    # of exactly 0 (PyTorch's gradient there: 0), in both encoder layers
    assert all(not w[k].any() for k in w if k.endswith(".b"))
    golden("autoencoder", w, {"x": images(rng, SIZES["B"])}, autoencoder)
    # golden() names the output "logits"; the example's is "recon"
    path = os.path.join(OUT, "autoencoder.golden")
    write_tensors(path, {("output:recon" if k == "output:logits" else k): v for k, v in read_tensors(path).items()})
    adam_step(w, images(rng, SIZES["B"]), "autoencoder_adam")


if __name__ == "__main__":
    main()
