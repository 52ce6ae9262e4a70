#!/usr/bin/env python3
"""Writes tests/golden/gru_lm*.golden: examples/gru.smelt (the character-level
GRU language model) at tiny sizes against a PyTorch twin built on
torch.nn.GRU, for tests/test_golden.c.

gru_lm.golden: smelt's initial weights, a batch of ids, the logits, the loss
and the gradient of every parameter. gru_lm_adam.golden: ten steps of the
example's train block (torch.optim.Adam at lr 2e-3, the default betas and eps,
no weight decay, torch.nn.utils.clip_grad_norm_ at 5.0, a constant schedule),
one batch each, the losses and the final weights; then the same with the
gradient norm clipped at 0.05 (gru_lm_adam_clipped.golden), below the
gradient norms these batches give, so that every step is clipped.

    make && /usr/bin/python3 tests/golden/make_golden_gru.py
"""
import os

import numpy as np
import torch
import torch.nn.functional as F

from make_golden import OUT, golden, smelt_init, write_tensors

SIZES = {"B": 2, "T": 6, "V": 11, "E": 4, "H": 5}


def gru_lm(p, idx, targets):
    """examples/gru.smelt: gather, nn.GRU(E, H, batch_first=True) from a zero
    state, a linear head (weight (H, V) as smelt stores it), cross_entropy
    averaged over every position."""
    V, E = p["emb"].shape
    H = p["rnn.cell.weight_hh"].shape[1]
    rnn = torch.nn.GRU(E, H, batch_first=True)
    for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        delattr(rnn, w + "_l0")
        setattr(rnn, w + "_l0", p["rnn.cell." + w])
    if hasattr(rnn, "_flat_weights"):
        rnn._flat_weights = [getattr(rnn, n) for n in rnn._flat_weights_names]
    y, _ = rnn(p["emb"][idx])                        # (B, T, H)
    logits = y @ p["head.w"] + p["head.b"]           # (B, T, V)
    return logits, F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))


def adam_steps(weights, batches, name, clip):
    params = {k: torch.tensor(v, requires_grad=True) for k, v in weights.items()}
    opt = torch.optim.Adam(params.values(), lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    out = {"param:" + k: v for k, v in weights.items()}
    norms = []
    for s, (idx, targets) in enumerate(batches):
        out["batch%d:idx" % s] = idx.astype(np.float32)
        out["batch%d:targets" % s] = targets.astype(np.float32)
        opt.zero_grad()
        _, loss = gru_lm(params, torch.tensor(idx).long(), torch.tensor(targets).long())
        loss.backward()
        norms.append(torch.nn.utils.clip_grad_norm_(params.values(), clip).item())
        opt.step()
        out["loss%d" % s] = loss.detach().numpy()
    for k, v in params.items():
        out["final:" + k] = v.detach().numpy()
    write_tensors(os.path.join(OUT, name + ".golden"), out)
    print("wrote %s.golden: last loss %.6f, gradient norms %.3g..%.3g (clipped at %g)"
          % (name, out["loss%d" % (len(batches) - 1)], min(norms), max(norms), clip))


def main():
    torch.set_num_threads(1)
    rng = np.random.default_rng(20261203)
    B, T, V = SIZES["B"], SIZES["T"], SIZES["V"]
    w = smelt_init("gru", SIZES)
    names = ["emb", "rnn.cell.weight_ih", "rnn.cell.weight_hh", "rnn.cell.bias_ih", "rnn.cell.bias_hh",
             "head.w", "head.b"]
    assert sorted(w) == sorted(names), sorted(w)
    # the ids include 0 and V - 1 and repeat (within a row, and in both rows at
    # the same position), some never occur (rows of emb without a gradient);
    # the targets repeat too
    idx = np.array([[0, 10, 3, 3, 7, 0], [10, 1, 3, 5, 3, 10]])
    targets = np.array([[10, 3, 3, 7, 0, 0], [1, 3, 5, 3, 10, 10]])
    golden("gru_lm", w, {"idx": idx, "targets": targets},
           lambda p, i, t: gru_lm(p, i.long(), t.long()))
    batches = [(rng.integers(0, V, size=(B, T)), rng.integers(0, V, size=(B, T))) for _ in range(10)]
    batches[0] = (idx, targets)
    adam_steps(w, batches, "gru_lm_adam", clip=5.0)
    adam_steps(w, batches, "gru_lm_adam_clipped", clip=0.05)


if __name__ == "__main__":
    main()
