#!/usr/bin/env python3
"""Compile time: `smelt build` of the MLP and GPT-2 small training ingots, beside
torch.compile's first training step of the same models (GPT-2 small from PyTorch's
pre-norm TransformerEncoderLayer with causal masking, GELU and the output tied to
the embedding) (where torch.compile
exists; reported as skipped, never as a win, where it does not).

Usage: python3 bench/compare_build.py [--gpt2]   (GPT-2 small takes minutes)
"""
import os
import subprocess
import sys
import time

GPT2 = ["-D", "B=8", "-D", "T=1024", "-D", "V=50257", "-D", "C=768", "-D", "L=12", "-D", "H=12"]


def smelt_build(model, defines):
    out = "/tmp/bench-build-%d.ingot" % os.getpid()
    t0 = time.perf_counter()
    subprocess.run(["build/smelt", "build", "examples/%s.smelt" % model, "-o", out] + defines, check=True)
    t = time.perf_counter() - t0
    size = os.path.getsize(out)
    os.remove(out)
    return t, size


def torch_first_step(model):
    import torch
    import torch.nn.functional as F
    if not hasattr(torch, "compile"):
        return None, "torch %s has no torch.compile" % torch.__version__
    torch.set_num_threads(2)
    if model == "mlp":
        net = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
                                  torch.nn.ReLU(), torch.nn.Linear(256, 10))
        x, y = torch.rand(128, 784), torch.randint(0, 10, (128,))
    else:
        layer = torch.nn.TransformerEncoderLayer(768, 12, 3072, dropout=0.1, activation="gelu",
                                                 batch_first=True, norm_first=True)
        class GPT(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.wte = torch.nn.Embedding(50257, 768)
                self.wpe = torch.nn.Parameter(torch.zeros(1024, 768))
                self.blocks = torch.nn.TransformerEncoder(layer, 12)
                self.ln = torch.nn.LayerNorm(768)
            def forward(self, idx):
                mask = torch.nn.Transformer.generate_square_subsequent_mask(idx.shape[1])
                h = self.blocks(self.wte(idx) + self.wpe, mask=mask, is_causal=True)
                return self.ln(h) @ self.wte.weight.T
        net = GPT()
        x, y = torch.randint(0, 50257, (8, 1024)), torch.randint(0, 50257, (8, 1024))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        out = net(x)
        loss = F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))
        loss.backward()
        opt.step()
    compiled = torch.compile(step)
    t0 = time.perf_counter()
    compiled()
    return time.perf_counter() - t0, None


def main():
    models = [("mlp", [])] + ([("gpt", GPT2)] if "--gpt2" in sys.argv else [])
    for model, defines in models:
        st, size = smelt_build(model, defines)
        name = "MLP" if model == "mlp" else "GPT-2 small"
        row = "| build the %s training step | smelt build %.1f s (ingot %.0f MB)" % (name, st, size / 1e6)
        try:
            tt, why = torch_first_step(model)
        except ImportError:
            tt, why = None, "PyTorch is not installed"
        except Exception as e:
            tt, why = None, "torch.compile failed here: %s" % type(e).__name__
        if tt is None:
            row += " | torch.compile skipped: %s |" % why
        else:
            row += " | torch.compile first step %.1f s (torch time / smelt time: %.2f) |" % (tt, tt / st)
        print(row, flush=True)


if __name__ == "__main__":
    main()
