"""An ONNX export of a small PyTorch model, and the accuracy PyTorch reaches
training it, for the test that an imported model trains (tests/test_onnx.c,
onnx/imported_mlp_trains_like_pytorch; docs/onnx.md "Training an imported
model").

Writes tests/onnx/fashion_mlp.onnx (torch.onnx.export of a 784-64-10 MLP,
batch dimension named 'batch', from its seeded initial weights) and
tests/onnx/fashion_mlp.torch.txt: the Fashion-MNIST test accuracy after
training that same model from those same weights for EPOCHS epochs with Adam
(lr 1e-3), batches of 128, mean cross-entropy, as the smelt train block the
test adds does.

usage: /usr/bin/python3 tests/onnx/make_trainable.py   (torch 1.13, numpy)
"""
import gzip
import os

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = "/usr/share/datasets/fashion-mnist"
EPOCHS, BATCH, LR, HIDDEN = 2, 128, 1e-3, 64


def idx(name):
    with gzip.open(os.path.join(DATA, name)) as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, HIDDEN)
        self.fc2 = nn.Linear(HIDDEN, 10)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def main():
    torch.manual_seed(1)
    model = Mlp()
    torch.onnx.export(model, torch.zeros(BATCH, 784), os.path.join(HERE, "fashion_mlp.onnx"),
                      input_names=["x"], output_names=["logits"], opset_version=13,
                      dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}})
    x = torch.tensor(idx("train-images-idx3-ubyte.gz").reshape(-1, 784), dtype=torch.float32) / 255
    y = torch.tensor(idx("train-labels-idx1-ubyte.gz"), dtype=torch.long)
    tx = torch.tensor(idx("t10k-images-idx3-ubyte.gz").reshape(-1, 784), dtype=torch.float32) / 255
    ty = torch.tensor(idx("t10k-labels-idx1-ubyte.gz"), dtype=torch.long)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    g = torch.Generator().manual_seed(1)
    steps = len(x) // BATCH   # whole batches only, as smelt's batcher
    for _ in range(EPOCHS):
        order = torch.randperm(len(x), generator=g)
        for s in range(steps):
            i = order[s * BATCH:(s + 1) * BATCH]
            loss = nn.functional.cross_entropy(model(x[i]), y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        acc = (model(tx).argmax(1) == ty).float().mean().item()
    with open(os.path.join(HERE, "fashion_mlp.torch.txt"), "w") as f:
        f.write("%.4f\n" % acc)
    print("PyTorch test accuracy after %d epochs: %.2f%%" % (EPOCHS, 100 * acc))


if __name__ == "__main__":
    main()
