#!/usr/bin/env python3
"""Writes tests/golden/batchnorm.golden: PyTorch's BatchNorm2d and BatchNorm1d
on the model of tests/golden/batchnorm.smelt, which tests/test_buffers.c
compares smelt's batchnorm2d and batchnorm1d against.

`smelt init --params-only` exports the initial weights and buffers; this
script draws four training batches and an eval batch with edge cases (a
channel offset by 100, one of magnitude 1e3, a constant channel whose batch
variance is zero), runs the twin in train mode with torch.optim.SGD
(lr 0.1, weight decay 0.01) for three steps and in eval mode after them, and
records:

    param:NAME, buffer:NAME     the initial values (from smelt)
    batchK:INPUT, eval:INPUT    the inputs of step K (0, 1, 2) and of eval
    train:OUTPUT, train:loss    step 0's outputs and loss (train mode)
    grad:NAME                   step 0's gradients
    step1:NAME, step3:NAME      every buffer and parameter after 1 and 3 steps
    eval:OUTPUT, eval:loss      eval mode after the three steps

Regenerate with `make && /usr/bin/python3 tests/golden/make_batchnorm_golden.py`.
"""
import os
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_golden import OUT, ROOT, SMELT, read_tensors, write_tensors  # noqa: E402

SIZES = {"N": 3, "Ci": 2, "C": 4, "H": 5, "W": 3, "L": 7}


class Twin(torch.nn.Module):
    """tests/golden/batchnorm.smelt in PyTorch."""

    def __init__(self, w):
        super().__init__()
        C, L = SIZES["C"], SIZES["L"]
        self.bn2 = torch.nn.BatchNorm2d(C)
        self.bn1 = torch.nn.BatchNorm1d(C, momentum=0.3)
        self.bn0 = torch.nn.BatchNorm1d(C, eps=1e-3, affine=False)
        self.bnc = torch.nn.BatchNorm1d(C, momentum=0.5)
        self.p = torch.nn.ParameterDict()
        for k in ["conv.w", "fc1.w", "fc1.b", "fc0.w"]:
            self.p[k.replace(".", "_")] = torch.nn.Parameter(torch.tensor(w[k]))
        for name in ["bn2", "bn1", "bnc"]:
            m = getattr(self, name)
            m.weight.data = torch.tensor(w[name + ".g"])
            m.bias.data = torch.tensor(w[name + ".b"])
        for name in ["bn2", "bn1", "bn0", "bnc"]:
            m = getattr(self, name)
            m.running_mean.copy_(torch.tensor(w[name + ".running_mean"]))
            m.running_var.copy_(torch.tensor(w[name + ".running_var"]))
        assert L == self.p["fc1_w"].shape[0]

    def forward(self, x, s, v, u, r2, r1, r0, rc):
        p = self.p
        y2 = self.bn2(F.conv2d(x, p["conv_w"], padding=1))
        y1 = self.bn1(s @ p["fc1_w"] + p["fc1_b"])
        y0 = self.bn0(v @ p["fc0_w"])
        yc = self.bnc(u)
        loss = (y2 * r2).sum() + (y1 * r1).sum() + (y0 * r0).sum() + (yc * rc).sum()
        return {"y2": y2, "y1": y1, "y0": y0, "yc": yc}, loss

    def named_state(self):
        """Every parameter and buffer under smelt's name."""
        out = {}
        for k, v in self.p.items():
            out[k.replace("_", ".")] = v
        for name in ["bn2", "bn1", "bn0", "bnc"]:
            m = getattr(self, name)
            if m.affine:
                out[name + ".g"] = m.weight
                out[name + ".b"] = m.bias
            out[name + ".running_mean"] = m.running_mean
            out[name + ".running_var"] = m.running_var
        return out


def batch(rng):
    N, Ci, C, H, W, L = (SIZES[k] for k in ["N", "Ci", "C", "H", "W", "L"])
    x = rng.standard_normal((N, Ci, H, W), dtype=np.float32)
    x[:, 0] += 100.0                                   # a large mean to subtract
    s = rng.standard_normal((N, C, L), dtype=np.float32)
    s[:, 1] *= 1000.0                                  # a channel of large magnitude
    v = rng.standard_normal((N, C), dtype=np.float32)
    u = rng.standard_normal((N, C), dtype=np.float32)
    u[:, 2] = 0.75                                     # constant: batch variance zero
    r = {"r2": (N, C, H, W), "r1": (N, C, L), "r0": (N, C), "rc": (N, C)}
    out = {"x": x, "s": s, "v": v, "u": u}
    for k, shape in r.items():
        out[k] = rng.standard_normal(shape, dtype=np.float32)
    return out


def smelt_init():
    path = os.path.join(OUT, "_init.tmp")
    args = [SMELT, "init", "--params-only", os.path.join(OUT, "batchnorm.smelt"), "-o", path]
    for k, v in SIZES.items():
        args += ["-D", "%s=%d" % (k, v)]
    subprocess.run(args, check=True)
    w = read_tensors(path)
    os.remove(path)
    return w


def main():
    if not os.path.exists(SMELT):
        sys.exit("build smelt first: make")
    torch.set_num_threads(1)
    rng = np.random.default_rng(20261201)
    w = smelt_init()
    twin = Twin(w)
    params = [t for t in twin.parameters()]
    opt = torch.optim.SGD(params, lr=0.1, weight_decay=0.01)
    out = {}
    for k, v in w.items():
        out[("buffer:" if "running" in k else "param:") + k] = v
    twin.train()
    for step in range(3):
        b = batch(rng)
        for k, v in b.items():
            out["batch%d:%s" % (step, k)] = v
        opt.zero_grad()
        ys, loss = twin(*[torch.tensor(b[k]) for k in ["x", "s", "v", "u", "r2", "r1", "r0", "rc"]])
        loss.backward()
        if step == 0:
            for k, y in ys.items():
                out["train:" + k] = y.detach().numpy()
            out["train:loss"] = loss.detach().numpy()
            for k, t in twin.named_state().items():
                if t.requires_grad:
                    out["grad:" + k] = t.grad.numpy().copy()
        opt.step()
        if step in (0, 2):
            for k, t in twin.named_state().items():
                out["step%d:%s" % (step + 1, k)] = t.detach().numpy().copy()
    twin.eval()
    b = batch(rng)
    for k, v in b.items():
        out["eval:" + k] = v
    with torch.no_grad():
        ys, loss = twin(*[torch.tensor(b[k]) for k in ["x", "s", "v", "u", "r2", "r1", "r0", "rc"]])
    for k, y in ys.items():
        out["eval:" + k] = y.numpy()
    out["eval:loss"] = loss.numpy()
    write_tensors(os.path.join(OUT, "batchnorm.golden"), out)
    print("wrote batchnorm.golden: %d tensors, eval loss %.6f" % (len(out), loss.item()))


if __name__ == "__main__":
    main()
