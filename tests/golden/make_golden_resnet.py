#!/usr/bin/env python3
"""Writes tests/golden/resnet.golden: examples/resnet.smelt at B = 4, C = 4 in
PyTorch, with torch.nn.BatchNorm2d in train mode (batch statistics, running
statistics updated) and one step of torch.optim.SGD with the example's
settings (lr 0.1, momentum 0.9, Nesterov, weight decay 5e-4) at a constant
learning rate (the example's cosine schedule warms up over 100 steps).

`smelt init --params-only` exports the initial weights and buffers; the batch
norms' scales, shifts and running statistics are then redrawn so that none is
the identity and a swapped g and b or a lost (1 - momentum) * running term
shows. The images are mostly exact zeros (as Fashion-MNIST's borders are), so
the stem's convolution is constant over whole regions and max pooling meets
ties; the labels repeat. Recorded:

    param:NAME, buffer:NAME     the values before the step
    input:x, input:y            the batch
    output:logits, output:loss  the forward pass in train mode
    grad:NAME                   the gradient of every parameter
    step1:NAME                  every parameter and buffer after the step

Regenerate with `make && /usr/bin/python3 tests/golden/make_golden_resnet.py`.
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_golden import OUT, smelt_init, write_tensors  # noqa: E402

SIZES = {"B": 4, "C": 4}
SGD = {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4}
BNS = ["stem.bn", "block1.a.bn", "block1.b.bn", "block2.a.bn", "block2.b.bn", "block2.down.bn",
       "block3.a.bn", "block3.b.bn", "block3.down.bn"]


class Twin(torch.nn.Module):
    """examples/resnet.smelt: convolutions without bias, each followed by a
    BatchNorm2d (momentum 0.1, eps 1e-5); the linear layer's weight is (in, out)."""

    def __init__(self, w):
        super().__init__()
        self.w = {}
        self.bn = {}
        for k, v in w.items():
            if k.endswith(".w") or k == "fc.b":
                self.w[k] = torch.nn.Parameter(torch.tensor(v))
        for name in BNS:
            m = torch.nn.BatchNorm2d(w[name + ".g"].shape[0], momentum=0.1, eps=1e-5)
            m.weight.data = torch.tensor(w[name + ".g"])
            m.bias.data = torch.tensor(w[name + ".b"])
            m.running_mean.copy_(torch.tensor(w[name + ".running_mean"]))
            m.running_var.copy_(torch.tensor(w[name + ".running_var"]))
            self.bn[name] = m

    def conv_bn(self, x, name, stride=1):
        wt = self.w[name + ".conv.w"]
        return self.bn[name + ".bn"](F.conv2d(x, wt, stride=stride, padding=wt.shape[-1] // 2))

    def block(self, x, name, stride):
        h = torch.relu(self.conv_bn(x, name + ".a", stride))
        h = self.conv_bn(h, name + ".b")
        skip = self.conv_bn(x, name + ".down", stride) if name + ".down.conv.w" in self.w else x
        return torch.relu(h + skip)

    def forward(self, x, y):
        h = torch.relu(self.conv_bn(x, "stem"))
        h = F.max_pool2d(h, 2)
        h = self.block(h, "block1", 1)
        h = self.block(h, "block2", 2)
        h = self.block(h, "block3", 2)
        logits = h.mean(dim=(2, 3)) @ self.w["fc.w"] + self.w["fc.b"]
        return logits, F.cross_entropy(logits, y)

    def named(self):
        """Every parameter and buffer under smelt's name."""
        out = dict(self.w)
        for name, m in self.bn.items():
            out[name + ".g"] = m.weight
            out[name + ".b"] = m.bias
            out[name + ".running_mean"] = m.running_mean
            out[name + ".running_var"] = m.running_var
        return out


def main():
    torch.set_num_threads(1)
    rng = np.random.default_rng(20261202)
    w = smelt_init("resnet", SIZES)
    for name in BNS:
        c = w[name + ".g"].shape[0]
        w[name + ".g"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
        w[name + ".b"] = (0.3 * rng.standard_normal(c)).astype(np.float32)
        w[name + ".running_mean"] = (0.5 * rng.standard_normal(c)).astype(np.float32)
        w[name + ".running_var"] = rng.uniform(0.5, 2.0, c).astype(np.float32)
    B = SIZES["B"]
    x = np.zeros((B, 1, 28, 28), dtype=np.float32)
    for i in range(B):                                 # an object in the middle, zeros around it
        r0, c0 = rng.integers(3, 8, 2)
        r1, c1 = rng.integers(20, 26, 2)
        x[i, 0, r0:r1, c0:c1] = rng.integers(0, 256, (r1 - r0, c1 - c0)) / 255.0
    y = np.array([3, 3, 7, 3], dtype=np.int64)         # a repeated label
    twin = Twin(w)
    named = twin.named()
    params = [t for t in named.values() if t.requires_grad]
    opt = torch.optim.SGD(params, **SGD)
    out = {}
    for k, v in w.items():
        out[("buffer:" if "running" in k else "param:") + k] = v
    out["input:x"] = x
    out["input:y"] = y.astype(np.float32)
    for m in twin.bn.values():
        m.train()
    logits, loss = twin(torch.tensor(x), torch.tensor(y))
    loss.backward()
    out["output:logits"] = logits.detach().numpy()
    out["output:loss"] = loss.detach().numpy()
    for k, t in named.items():
        if t.requires_grad:
            out["grad:" + k] = t.grad.numpy().copy()
    opt.step()
    for k, t in named.items():
        out["step1:" + k] = t.detach().numpy().copy()
    write_tensors(os.path.join(OUT, "resnet.golden"), out)
    print("wrote resnet.golden: loss %.6f, %d tensors" % (loss.item(), len(out)))


if __name__ == "__main__":
    main()
