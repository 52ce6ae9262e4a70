#!/usr/bin/env python3
"""Writes the PyTorch goldens that tests/test_golden.c compares smelt against.

For each example at tiny sizes: `smelt init` exports the initial weights, this
script draws inputs, runs the same model written in PyTorch, and writes one
tensor file (docs/tensors.md) per model with the weights, the inputs, the
outputs, the loss and the gradient of every parameter. For the MLP it also runs
ten steps of torch.optim.AdamW on ten batches and records the losses and the
final weights.

The tests need only the committed .golden files, not PyTorch. To regenerate
(PyTorch and NumPy from PyPI, or Debian's python3-torch, which brings NumPy):

    make && python3 tests/golden/make_golden.py

Everything runs in float32 on the CPU, like smelt's interpreter rounds.
"""
import os
import struct
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMELT = os.path.join(ROOT, "build", "smelt")
OUT = os.path.join(ROOT, "tests", "golden")


def read_tensors(path):
    with open(path, "rb") as f:
        data = f.read()
    magic, version, count = struct.unpack_from("<4sII", data, 0)
    assert magic == b"SMTF" and version == 1, path
    pos, out = 12, {}
    for _ in range(count):
        (n,) = struct.unpack_from("<I", data, pos)
        pos += 4
        name = data[pos:pos + n].decode()
        pos += n
        dtype, ndim = struct.unpack_from("<II", data, pos)
        pos += 8
        dims = struct.unpack_from("<%dq" % ndim, data, pos)
        pos += 8 * ndim
        count_ = int(np.prod(dims)) if ndim else 1
        arr = np.frombuffer(data, dtype="<f4", count=count_, offset=pos).reshape(dims)
        pos += 4 * count_
        out[name] = arr.copy()
    return out


def write_tensors(path, tensors):
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<4sII", b"SMTF", 1, len(tensors)))
        for name, arr in tensors.items():
            arr = np.asarray(arr, dtype="<f4")
            raw = name.encode()
            f.write(struct.pack("<I", len(raw)) + raw)
            f.write(struct.pack("<II", 0, arr.ndim))
            f.write(struct.pack("<%dq" % arr.ndim, *arr.shape))
            f.write(arr.tobytes())
    os.replace(path + ".tmp", path)


def smelt_init(model, defines):
    """Initial weights of examples/MODEL.smelt, or of the file MODEL names when it has a '/'."""
    path = os.path.join(OUT, "_init.tmp")
    src = os.path.join(ROOT, model) if "/" in model else os.path.join(ROOT, "examples", model + ".smelt")
    args = [SMELT, "init", "--params-only", src, "-o", path]
    for k, v in defines.items():
        args += ["-D", "%s=%d" % (k, v)]
    subprocess.run(args, check=True)
    w = read_tensors(path)
    os.remove(path)
    return w


def layernorm(x, g, b):
    return F.layer_norm(x, (x.shape[-1],), g, b, eps=1e-5)


# ---- the twins: the same models as examples/*.smelt, in PyTorch

def mlp(p, x, y):
    h = torch.relu(x @ p["fc1.w"] + p["fc1.b"])
    h = torch.relu(h @ p["fc2.w"] + p["fc2.b"])
    logits = h @ p["fc3.w"] + p["fc3.b"]
    return logits, F.cross_entropy(logits, y)


def cnn(p, x, y):
    h = torch.relu(F.conv2d(x, p["conv1.w"], p["conv1.b"], padding=1))
    h = F.max_pool2d(h, 2)
    h = torch.relu(F.conv2d(h, p["conv2.w"], p["conv2.b"], padding=1))
    h = F.max_pool2d(h, 2)
    h = h.reshape(h.shape[0], -1)            # dropout is the identity at inference
    h = torch.relu(h @ p["fc1.w"] + p["fc1.b"])
    logits = h @ p["fc2.w"] + p["fc2.b"]
    return logits, F.cross_entropy(logits, y)


def gpt(p, idx, targets, L, H):
    B, T = idx.shape
    x = p["wte"][idx] + p["wpe"]
    C = x.shape[-1]
    D = C // H
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for l in range(L):
        pre = "h.%d." % l
        a = layernorm(x, p[pre + "ln1.g"], p[pre + "ln1.b"])
        qkv = a @ p[pre + "attn.qkv.w"] + p[pre + "attn.qkv.b"]
        q, k, v = [qkv[..., i * C:(i + 1) * C].reshape(B, T, H, D).transpose(1, 2) for i in range(3)]
        att = (q @ k.transpose(2, 3)) * (1.0 / D ** 0.5)
        att = torch.softmax(torch.where(causal, att, torch.tensor(-1e9)), dim=-1)
        yatt = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + yatt @ p[pre + "attn.proj.w"] + p[pre + "attn.proj.b"]
        m = layernorm(x, p[pre + "ln2.g"], p[pre + "ln2.b"])
        m = F.gelu(m @ p[pre + "mlp.fc.w"] + p[pre + "mlp.fc.b"], approximate="tanh")
        x = x + m @ p[pre + "mlp.proj.w"] + p[pre + "mlp.proj.b"]
    x = layernorm(x, p["ln_f.g"], p["ln_f.b"])
    logits = x @ p["wte"].T
    return logits, F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(B * T))


def tied_rnn(p, idx, targets):
    """tests/golden/tied_rnn.smelt: PyTorch has no negative-step slices, so flip."""
    wte = p["wte"]
    x = wte[idx]                                   # (B, T, C)
    B, T, C = x.shape

    def rnn(seq, pre):
        h = torch.zeros(B, C)
        hs = []
        for t in range(T):
            h = torch.tanh(torch.cat([seq[:, t], h], dim=1) @ p[pre + "cell.w"] + p[pre + "cell.b"])
            hs.append(h)
        return torch.stack(hs, dim=1)

    h = rnn(x, "fwd.") + rnn(x.flip(1), "bwd.").flip(1)
    logits = h @ wte.T                             # the same tensor as the embedding
    return logits, F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(B * T))


def golden(name, weights, inputs, run):
    params = {k: torch.tensor(v, requires_grad=True) for k, v in weights.items()}
    args = [torch.tensor(v) for v in inputs.values()]
    logits, loss = run(params, *args)
    loss.backward()
    out = {}
    for k, v in weights.items():
        out["param:" + k] = v
    for k, v in inputs.items():
        out["input:" + k] = v.astype(np.float32)
    out["output:logits"] = logits.detach().numpy()
    out["output:loss"] = loss.detach().numpy()
    for k, v in params.items():
        out["grad:" + k] = v.grad.numpy()
    write_tensors(os.path.join(OUT, name + ".golden"), out)
    print("wrote %s.golden: loss %.6f, %d tensors" % (name, loss.item(), len(out)))


def adamw_steps(weights, rng, steps=10, batch=4, name="mlp_adamw", model=None, draw=None):
    """Ten AdamW steps (on the MLP unless model and draw are given), one fresh batch each."""
    if model is None:
        model = lambda p, x, y: mlp(p, torch.tensor(x), torch.tensor(y))
        draw = lambda: {"x": rng.random((batch, 784), dtype=np.float32),
                        "y": rng.integers(0, 10, size=batch)}
    params = {k: torch.tensor(v, requires_grad=True) for k, v in weights.items()}
    opt = torch.optim.AdamW(params.values(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    out = {"param:" + k: v for k, v in weights.items()}
    for s in range(steps):
        batch_in = draw()
        for k, v in batch_in.items():
            out["batch%d:%s" % (s, k)] = v.astype(np.float32)
        opt.zero_grad()
        _, loss = model(params, *batch_in.values())
        loss.backward()
        opt.step()
        out["loss%d" % s] = loss.detach().numpy()
    for k, v in params.items():
        out["final:" + k] = v.detach().numpy()
    write_tensors(os.path.join(OUT, name + ".golden"), out)
    print("wrote %s.golden: last loss %.6f" % (name, out["loss%d" % (steps - 1)]))


def main():
    if not os.path.exists(SMELT):
        sys.exit("build smelt first: make")
    torch.set_num_threads(1)
    only = sys.argv[1:]   # e.g. tied_rnn: write that group alone
    if not only or "examples" in only:
        examples()
    if not only or "tied_rnn" in only:
        tied()


def examples():
    rng = np.random.default_rng(20261126)

    w = smelt_init("mlp", {"B": 4, "H": 8})
    golden("mlp", w, {"x": rng.random((4, 784), dtype=np.float32),
                      "y": rng.integers(0, 10, size=4)},
           lambda p, x, y: mlp(p, x, y.long()))

    w = smelt_init("cnn", {"B": 2, "C1": 2, "C2": 3, "F": 8})
    golden("cnn", w, {"x": rng.random((2, 1, 28, 28), dtype=np.float32),
                      "y": rng.integers(0, 10, size=2)},
           lambda p, x, y: cnn(p, x, y.long()))

    w = smelt_init("gpt", {"B": 2, "T": 8, "V": 16, "C": 16, "L": 1, "H": 2})
    golden("gpt_block", w, {"idx": rng.integers(0, 16, size=(2, 8)),
                            "targets": rng.integers(0, 16, size=(2, 8))},
           lambda p, i, t: gpt(p, i.long(), t.long(), L=1, H=2))

    adamw_steps(smelt_init("mlp", {"B": 4, "H": 8}), rng)


def tied():
    rng = np.random.default_rng(20261201)
    # weight tying, lists, stack and negative steps (tests/golden/tied_rnn.smelt);
    # the ids include 0 and V - 1 and repeat, so rows of wte get several uses
    tied = "tests/golden/tied_rnn.smelt"
    names = ["wte", "fwd.cell.w", "fwd.cell.b", "bwd.cell.w", "bwd.cell.b"]
    w = {k: v for k, v in smelt_init(tied, {}).items() if k in names}
    assert sorted(w) == sorted(names), sorted(w)
    golden("tied_rnn", w,
           {"idx": np.array([[0, 10, 3, 3, 7], [10, 1, 0, 5, 3]]),
            "targets": np.array([[10, 3, 3, 7, 0], [1, 0, 5, 3, 10]])},
           lambda p, i, t: tied_rnn(p, i.long(), t.long()))
    adamw_steps(w, rng, name="tied_rnn_adamw",
                model=lambda p, i, t: tied_rnn(p, torch.tensor(i).long(), torch.tensor(t).long()),
                draw=lambda: {"idx": rng.integers(0, 11, size=(2, 5)),
                              "targets": rng.integers(0, 11, size=(2, 5))})


if __name__ == "__main__":
    main()
