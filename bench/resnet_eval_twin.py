#!/usr/bin/env python3
"""examples/resnet.smelt's trained weights evaluated by a PyTorch twin.

Trains nothing: reads the checkpoint `smelt train examples/resnet.smelt
--checkpoint=PATH` wrote (parameters and the batch norms' running
statistics, docs/tensors.md), evaluates the same network in PyTorch with
batch norm in eval mode (F.batch_norm with training=False, the running
statistics from the checkpoint) on the Fashion-MNIST test set, runs `smelt
eval` on the same checkpoint, and prints both accuracies. They must agree
within 0.5 points (exit status 1 otherwise). Both figures are over all 10000
test images (smelt eval runs the images after the last whole batch of 64 on
their own).

Usage: /usr/bin/python3 bench/resnet_eval_twin.py [CHECKPOINT]   (default resnet.ckpt)
"""
import gzip
import os
import re
import struct
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import tensorfile  # noqa: E402  (tests/tensorfile.py)
DATA = "/usr/share/datasets/fashion-mnist"


def read_checkpoint(path):
    out = {}
    for name, a in tensorfile.read(path).items():
        assert a.dtype == np.float32, "%s: an fp32 checkpoint holds f32 tensors" % name
        out[name] = torch.tensor(a)
    return out


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack_from(">%dI" % ndim, data, 4)
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def conv_bn(p, x, name, stride=1):
    w = p[name + ".conv.w"]
    y = F.conv2d(x, w, stride=stride, padding=w.shape[-1] // 2)
    return F.batch_norm(y, p[name + ".bn.running_mean"], p[name + ".bn.running_var"], p[name + ".bn.g"],
                        p[name + ".bn.b"], training=False, eps=1e-5)


def block(p, x, name, stride):
    h = torch.relu(conv_bn(p, x, name + ".a", stride))
    h = conv_bn(p, h, name + ".b")
    skip = conv_bn(p, x, name + ".down", stride) if name + ".down.conv.w" in p else x
    return torch.relu(h + skip)


def resnet(p, x):
    h = torch.relu(conv_bn(p, x, "stem"))
    h = F.max_pool2d(h, 2)
    h = block(p, h, "block1", 1)
    h = block(p, h, "block2", 2)
    h = block(p, h, "block3", 2)
    return h.mean(dim=(2, 3)) @ p["fc.w"] + p["fc.b"]


def main():
    ckpt = sys.argv[1] if len(sys.argv) > 1 else "resnet.ckpt"
    p = read_checkpoint(ckpt)
    images = read_idx(os.path.join(DATA, "t10k-images-idx3-ubyte.gz")).astype(np.float32) / 255
    labels = read_idx(os.path.join(DATA, "t10k-labels-idx1-ubyte.gz")).astype(np.int64)
    n = len(labels)
    torch.set_num_threads(2)
    with torch.no_grad():
        x = torch.tensor(images[:n]).reshape(n, 1, 28, 28)
        logits = torch.cat([resnet(p, x[i:i + 1000]) for i in range(0, n, 1000)])
    torch_acc = 100.0 * (logits.argmax(1).numpy() == labels[:n]).mean()
    out = subprocess.run([os.path.join(ROOT, "build", "smelt"), "eval", os.path.join(ROOT, "examples", "resnet.smelt"),
                          "--checkpoint=" + ckpt], check=True, capture_output=True, text=True)
    m = re.search(r"accuracy ([\d.]+)% \((\d+) samples\)", out.stdout + out.stderr)
    assert m, out.stdout + out.stderr
    smelt_acc, smelt_n = float(m.group(1)), int(m.group(2))
    print("PyTorch twin, batch norm on the running statistics: %.2f%% (%d test images)" % (torch_acc, n))
    print("smelt eval:                                         %.2f%% (%d test images)" % (smelt_acc, smelt_n))
    print("difference: %.2f points" % abs(torch_acc - smelt_acc))
    sys.exit(0 if smelt_n == n and abs(torch_acc - smelt_acc) <= 0.5 else 1)


if __name__ == "__main__":
    main()
