#!/usr/bin/env python3
"""Writes the PyTorch goldens that tests/test_golden.c compares smelt against.

For each example at tiny sizes: `smelt init` exports the initial weights, this
script draws inputs, runs the same model written in PyTorch, and writes one
tensor file (docs/tensors.md) per model with the weights, the inputs, the
outputs, the loss and the gradient of every parameter. For the MLP it also runs
ten steps of torch.optim.AdamW on ten batches and records the losses and the
final weights, once plain and once with param groups, a frozen weight and a
LambdaLR linear schedule.

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
sys.path.insert(0, os.path.join(ROOT, "tests"))
import tensorfile  # noqa: E402  (tests/tensorfile.py)


def read_tensors(path):
    """Every tensor of a smelt tensor file, as float32 arrays."""
    return {k: v.astype("<f4") for k, v in tensorfile.read(path).items()}


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


# ---- elementwise activations at extreme inputs

ACTIVATIONS = {
    "erf": torch.erf,
    "softplus": F.softplus,
    "softplus_beta": lambda t: F.softplus(t, beta=2.0, threshold=5.0),
    "silu": F.silu,
    "gelu": F.gelu,
    "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"),
    "stop_gradient": lambda t: t.detach(),
}

EXTREMES = [0.0, -0.0, 1e-45, -1e-45, 1e-40, -1e-40, 1e-30, -1e-30, 0.5, -0.5, 1.0, -1.0,
            2.5, -2.5, 5.0, -5.0, 10.0, -10.0, 19.9, 20.1, 30.0, -30.0, 88.0, -88.0, -88.5,
            -95.0, 100.0, -100.0, 1e10, -1e10, 3.4e38, -3.4e38, np.inf, -np.inf, np.nan]


def activations():
    """Each activation of tests/test_golden.c's model on the same inputs: the
    extremes above and normal draws, its value and the gradient of
    sum(f(x) * r) with respect to x."""
    rng = np.random.default_rng(20261201)
    x = np.concatenate([np.array(EXTREMES, dtype=np.float32),
                        (3 * rng.standard_normal(93)).astype(np.float32)])
    r = rng.uniform(-1, 1, size=x.shape).astype(np.float32)
    out = {"input:x": x, "input:r": r}
    for name, f in ACTIVATIONS.items():
        t = torch.tensor(x, requires_grad=True)
        y = f(t)
        if y.requires_grad:
            (y * torch.tensor(r)).sum().backward()
        out["output:" + name] = y.detach().numpy()
        out["grad:" + name] = t.grad.numpy() if t.grad is not None else np.zeros_like(x)
    write_tensors(os.path.join(OUT, "activations.golden"), out)
    print("wrote activations.golden: %d inputs, %d functions" % (len(x), len(ACTIVATIONS)))


# ---- library layers against their torch.nn modules (tests/test_golden.c's check_layer)

def layer_golden(name, params, inputs, run):
    """Writes name.golden: params and inputs, the outputs run gives (a dict),
    and the gradient of the loss it returns for every param and every input
    in grads_of."""
    p = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    x = {k: torch.tensor(v, requires_grad=v.dtype == np.float32) for k, v in inputs.items()}
    outputs, loss, grads_of = run(p, x)
    loss.backward()
    out = {"param:" + k: v for k, v in params.items()}
    out.update({"input:" + k: v.astype(np.float32) for k, v in inputs.items()})
    out.update({"output:" + k: v.detach().numpy() for k, v in outputs.items()})
    out.update({"grad:" + k: v.grad.numpy() for k, v in p.items()})
    out.update({"grad:" + k: x[k].grad.numpy() for k in grads_of})
    write_tensors(os.path.join(OUT, name + ".golden"), out)
    print("wrote %s.golden: loss %.6f, %d tensors" % (name, loss.item(), len(out)))


def gru_golden(rng):
    B, T, I, H = 3, 5, 4, 6
    k = 1 / np.sqrt(H)
    params = {}
    for scope in ("rnn.cell", "cell"):
        params[scope + ".weight_ih"] = rng.uniform(-k, k, (3 * H, I)).astype(np.float32)
        params[scope + ".weight_hh"] = rng.uniform(-k, k, (3 * H, H)).astype(np.float32)
        params[scope + ".bias_ih"] = rng.uniform(-k, k, 3 * H).astype(np.float32)
        params[scope + ".bias_hh"] = rng.uniform(-k, k, 3 * H).astype(np.float32)
    inputs = {"x": rng.standard_normal((B, T, I)).astype(np.float32),
              "h0": rng.standard_normal((B, H)).astype(np.float32),
              "r": rng.uniform(-1, 1, (B, T, H)).astype(np.float32),
              "rc": rng.uniform(-1, 1, (B, H)).astype(np.float32)}

    def run(p, x):
        rnn = torch.nn.GRU(I, H, batch_first=True)
        cell = torch.nn.GRUCell(I, H)
        for mod, scope, suffix in ((rnn, "rnn.cell", "_l0"), (cell, "cell", "")):
            for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                delattr(mod, w + suffix)
                setattr(mod, w + suffix, p[scope + "." + w])
        if hasattr(rnn, "_flat_weights"):
            rnn._flat_weights = [getattr(rnn, n) for n in rnn._flat_weights_names]
        y, _ = rnn(x["x"])
        c = cell(x["x"][:, 2], x["h0"])
        return {"y": y, "c": c}, (y * x["r"]).sum() + (c * x["rc"]).sum(), ["x", "h0"]
    layer_golden("gru", params, inputs, run)


def attention_twin(p, pre, q_in, kv_in, H, mask, self_attn):
    """nn.smelt's self_attention / cross_attention in PyTorch; mask: bool,
    broadcastable to (B, H, Tq, Tk), True = attend, or None."""
    B, Tq, C = q_in.shape
    Tk = kv_in.shape[1]
    D = C // H
    if self_attn:
        qkv = q_in @ p[pre + "qkv.w"] + p[pre + "qkv.b"]
        q, k, v = [qkv[..., i * C:(i + 1) * C] for i in range(3)]
    else:
        q = q_in @ p[pre + "q.w"] + p[pre + "q.b"]
        kv = kv_in @ p[pre + "kv.w"] + p[pre + "kv.b"]
        k, v = kv[..., :C], kv[..., C:]
    q = q.reshape(B, Tq, H, D).transpose(1, 2)
    k = k.reshape(B, Tk, H, D).transpose(1, 2)
    v = v.reshape(B, Tk, H, D).transpose(1, 2)
    att = (q @ k.transpose(2, 3)) / D ** 0.5
    if mask is not None:
        att = att.masked_fill(~mask, float("-inf"))
    y = (torch.softmax(att, dim=-1) @ v).transpose(1, 2).reshape(B, Tq, C)
    return y @ p[pre + "proj.w"] + p[pre + "proj.b"]


def attention_golden(rng):
    B, T, S, C, E, H = 2, 5, 3, 8, 6, 2
    def lin(name, i, o):
        k = 1 / np.sqrt(i)
        return {name + ".w": rng.uniform(-k, k, (i, o)).astype(np.float32),
                name + ".b": rng.uniform(-k, k, o).astype(np.float32)}
    params = {}
    for pre in ("plain", "causal", "masked3", "masked4"):
        params.update(lin(pre + ".qkv", C, 3 * C))
        params.update(lin(pre + ".proj", C, C))
    for pre in ("cross", "crossm"):
        params.update(lin(pre + ".q", C, C))
        params.update(lin(pre + ".kv", E, 2 * C))
        params.update(lin(pre + ".proj", C, C))
    eye = np.eye(T, dtype=bool)
    m3 = (rng.random((B, T, T)) < 0.5) | eye                 # every query attends itself at least
    m4 = (rng.random((B, 1, T, T)) < 0.5) | eye
    mc = rng.random((B, T, S)) < 0.5
    mc[:, np.arange(T), np.arange(T) % S] = True
    inputs = {"x": rng.standard_normal((B, T, C)).astype(np.float32),
              "kv": rng.standard_normal((B, S, E)).astype(np.float32),
              "m3": m3.astype(np.float32), "m4": m4.astype(np.float32), "mc": mc.astype(np.float32)}
    for o in "abcdef":
        inputs["r_" + o] = rng.uniform(-1, 1, (B, T, C)).astype(np.float32)

    def run(p, x):
        causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
        X, KV = x["x"], x["kv"]
        M3, M4, MC = x["m3"].bool(), x["m4"].bool(), x["mc"].bool()
        out = {"a": attention_twin(p, "plain.", X, X, H, None, True),
               "b": attention_twin(p, "causal.", X, X, H, causal, True),
               "c": attention_twin(p, "masked3.", X, X, H, M3[:, None], True),
               "d": attention_twin(p, "masked4.", X, X, H, M4 & causal, True),
               "e": attention_twin(p, "cross.", X, KV, H, None, False),
               "f": attention_twin(p, "crossm.", X, KV, H, MC[:, None], False)}
        # the twin's causal case is torch.nn.MultiheadAttention's, whose bool
        # mask is the opposite (True: masked)
        mha = torch.nn.MultiheadAttention(C, H, batch_first=True)
        with torch.no_grad():
            mha.in_proj_weight.copy_(p["causal.qkv.w"].T)
            mha.in_proj_bias.copy_(p["causal.qkv.b"])
            mha.out_proj.weight.copy_(p["causal.proj.w"].T)
            mha.out_proj.bias.copy_(p["causal.proj.b"])
            ref, _ = mha(X, X, X, attn_mask=~causal, need_weights=False)
            assert torch.allclose(ref, out["b"], atol=1e-6), "the twin is not nn.MultiheadAttention"
        loss = sum((out[o] * x["r_" + o]).sum() for o in "abcdef")
        return out, loss, ["x", "kv"]
    layer_golden("attention", params, inputs, run)


def group_norm_golden(rng):
    cases = {"a": ("gn", (2, 6, 3, 4), 3, 1e-5), "b": ("gn2", (3, 4), 2, 1e-3), "c": ("gn3", (2, 4, 5), 1, 1e-5),
             "d": (None, (2, 4, 3), 2, 1e-5)}   # affine = false
    params, inputs = {}, {}
    for o, (pre, shape, groups, eps) in cases.items():
        if pre:
            params[pre + ".weight"] = rng.uniform(0.5, 1.5, shape[1]).astype(np.float32)
            params[pre + ".bias"] = rng.uniform(-0.5, 0.5, shape[1]).astype(np.float32)
        inputs["x_" + o] = (2 * rng.standard_normal(shape) + 1).astype(np.float32)
        inputs["r_" + o] = rng.uniform(-1, 1, shape).astype(np.float32)

    def run(p, x):
        out = {o: F.group_norm(x["x_" + o], groups, p[pre + ".weight"] if pre else None,
                               p[pre + ".bias"] if pre else None, eps)
               for o, (pre, shape, groups, eps) in cases.items()}
        loss = sum((out[o] * x["r_" + o]).sum() for o in cases)
        return out, loss, ["x_" + o for o in cases]
    layer_golden("group_norm", params, inputs, run)


def layers():
    rng = np.random.default_rng(20261202)
    gru_golden(rng)
    attention_golden(rng)
    group_norm_golden(rng)


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


def adamw_groups_steps(weights, rng, steps=10, batch=4, warmup=3, decay_to=0.1):
    """Ten AdamW steps on the MLP with param groups, a frozen weight and the
    linear schedule (docs/language.md): biases without weight decay, fc1.w at
    3x the learning rate with its own betas, fc3.w frozen. The decay is strong
    so that decaying the biases too would show."""
    params = {k: torch.tensor(v, requires_grad=(k != "fc3.w")) for k, v in weights.items()}
    biases = [v for k, v in params.items() if k.endswith(".b")]
    opt = torch.optim.AdamW([
        {"params": biases, "weight_decay": 0.0},
        {"params": [params["fc1.w"]], "lr": 3e-2, "betas": (0.8, 0.99)},
        {"params": [params["fc2.w"]]},
    ], lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.5)

    def linear(k):   # LambdaLR passes k = 0 at the first step; smelt's t = k + 1
        t = k + 1
        p = min(max((t - warmup) / max(steps - warmup, 1), 0.0), 1.0)
        return min(1.0, t / warmup) * (1 - (1 - decay_to) * p)

    sched = torch.optim.lr_scheduler.LambdaLR(opt, linear)
    out = {"param:" + k: v for k, v in weights.items()}
    for s in range(steps):
        x = rng.random((batch, 784), dtype=np.float32)
        y = rng.integers(0, 10, size=batch)
        out["batch%d:x" % s] = x
        out["batch%d:y" % s] = y.astype(np.float32)
        opt.zero_grad()
        _, loss = mlp(params, torch.tensor(x), torch.tensor(y))
        loss.backward()
        opt.step()
        sched.step()
        out["loss%d" % s] = loss.detach().numpy()
    for k, v in params.items():
        out["final:" + k] = v.detach().numpy()
    write_tensors(os.path.join(OUT, "mlp_adamw_groups.golden"), out)
    print("wrote mlp_adamw_groups.golden: last loss %.6f" % out["loss%d" % (steps - 1)])


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
    activations()
    layers()

    adamw_groups_steps(smelt_init("mlp", {"B": 4, "H": 8}), np.random.default_rng(20261201))


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
