#!/usr/bin/env python3
"""The CNN and GPT training steps, and the CNN's batch-1 inference latency,
on the CPU: smelt against PyTorch (eager and torch.compile) with the same
thread count, and against ONNX Runtime on the PyTorch twin exported to ONNX.
Measured alternately in one run (three rounds; each figure the median of its
rounds); prints Markdown rows with the ratios.

smelt's figures come from `smelt bench` (whole runs of an entry on random
inputs, median over the runs). The PyTorch twins have the same layers and
sizes as examples/cnn.smelt and examples/gpt.smelt (dropout as in the model
files, AdamW/Adam as in their train blocks). A reference that is not
installed is reported as skipped, never as a win.

Usage: python3 bench/compare_models.py [THREADS]
"""
import io
import re
import statistics
import subprocess
import sys
import time

THREADS = int(sys.argv[1]) if len(sys.argv) > 1 else 2
GPT = dict(B=8, T=64, V=256, C=128, L=2, H=4)


def smelt_ms(args):
    out = subprocess.run(["build/smelt", "bench", *args, "--device=cpu", f"--threads={THREADS}"], check=True,
                         capture_output=True, text=True).stdout
    return float(re.search(r"median ([\d.]+) ms", out).group(1))


def smelt_cnn_step():
    return smelt_ms(["examples/cnn.smelt", "--entry=train_step", "--runs=20"])


def smelt_gpt_step():
    return smelt_ms(["examples/gpt.smelt", "--entry=train_step", "--runs=20"] +
                    [f"-D{k}={v}" for k, v in GPT.items() if k != "V"])


def smelt_cnn_latency():
    return smelt_ms(["examples/cnn.smelt", "--batch=1", "--runs=500"])


def cnn_model(torch):
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Dropout(0.25), nn.Linear(64 * 49, 128), nn.ReLU(),
                         nn.Dropout(0.5), nn.Linear(128, 10))


def gpt_model(torch):
    nn, F = torch.nn, torch.nn.functional
    B, T, V, C, L, H = (GPT[k] for k in "BTVCLH")

    causal = torch.ones(T, T, dtype=torch.bool).tril()

    def attention(q, k, v, p):
        """Causal attention with dropout: PyTorch's fused kernel where it has one (2.0 on), else the same
        arithmetic written out (1.13)."""
        if hasattr(F, "scaled_dot_product_attention"):
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p)
        s = (q @ k.transpose(-2, -1)) / (q.shape[-1] ** 0.5)
        return F.dropout(s.masked_fill(~causal, float("-inf")).softmax(-1), p) @ v

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(C), nn.LayerNorm(C)
            self.qkv, self.proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
            self.fc, self.out = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)
            self.drop = nn.Dropout(0.1)

        def forward(self, x):
            q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
            q, k, v = (t.view(B, T, H, C // H).transpose(1, 2) for t in (q, k, v))
            a = attention(q, k, v, 0.1 if self.training else 0.0)
            x = x + self.drop(self.proj(a.transpose(1, 2).reshape(B, T, C)))
            return x + self.drop(self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh")))

    class Gpt(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(V, C), nn.Parameter(torch.zeros(T, C))
            self.blocks = nn.ModuleList(Block() for _ in range(L))
            self.ln_f, self.drop = nn.LayerNorm(C), nn.Dropout(0.1)

        def forward(self, idx):
            x = self.drop(self.wte(idx) + self.wpe)
            for b in self.blocks:
                x = b(x)
            return self.ln_f(x) @ self.wte.weight.T

    return Gpt()


def torch_step(torch, kind, compiled):
    torch.manual_seed(1)
    F = torch.nn.functional
    if kind == "cnn":
        model = cnn_model(torch)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        x, y = torch.rand(64, 1, 28, 28), torch.randint(0, 10, (64,))
        loss_of = lambda: F.cross_entropy(model(x), y)
    else:
        model = gpt_model(torch)
        opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1)
        x, y = (torch.randint(0, 256, (GPT["B"], GPT["T"])) for _ in range(2))
        loss_of = lambda: F.cross_entropy(model(x).reshape(-1, 256), y.reshape(-1))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_of()
        loss.backward()
        opt.step()
    if compiled:
        step = torch.compile(step)
        step()
    return step


def median_ms(fn, runs, warm=5):
    times = []
    for i in range(warm + runs):
        t0 = time.perf_counter()
        fn()
        if i >= warm:
            times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def onnx_latency(torch):
    """CNN batch-1 latency in ONNX Runtime, or a reason it could not run."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None, "onnxruntime is not installed"
    model = cnn_model(torch).eval()
    buf = io.BytesIO()
    args = dict(input_names=["x"], output_names=["logits"])
    try:
        try:
            torch.onnx.export(model, (torch.rand(1, 1, 28, 28),), buf, dynamo=False, **args)
        except TypeError:  # a PyTorch before 2.5, whose exporter has no dynamo switch
            buf = io.BytesIO()
            torch.onnx.export(model, (torch.rand(1, 1, 28, 28),), buf, **args)
    except Exception as e:  # the exporter needs the onnx package
        return None, "torch.onnx.export failed: %s" % type(e).__name__
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = THREADS
    sess = ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])
    x = {"x": torch.rand(1, 1, 28, 28).numpy()}
    return (lambda: sess.run(None, x)), "onnxruntime %s" % ort.__version__


def main():
    try:
        import torch
        torch.set_num_threads(THREADS)
    except ImportError:
        torch = None
    rows = {"cnn": [], "gpt": []}
    refs = {}
    if torch:
        for kind in rows:
            refs[kind] = {"eager": torch_step(torch, kind, False)}
            try:
                refs[kind]["compile"] = torch_step(torch, kind, True)
            except Exception as e:  # a backend that cannot run here
                refs[kind]["compile_why"] = "torch.compile failed: %s" % type(e).__name__
        ort_fn, ort_what = onnx_latency(torch)
    else:
        ort_fn, ort_what = None, "PyTorch is not installed"
    got = {k: [] for k in ["cnn", "gpt", "cnn_eager", "cnn_compile", "gpt_eager", "gpt_compile", "lat", "lat_ort"]}
    for _ in range(3):
        got["cnn"].append(smelt_cnn_step())
        got["gpt"].append(smelt_gpt_step())
        got["lat"].append(smelt_cnn_latency())
        for kind in ["cnn", "gpt"]:
            for mode in ["eager", "compile"]:
                if torch and mode in refs[kind]:
                    got[f"{kind}_{mode}"].append(median_ms(refs[kind][mode], 20))
        if ort_fn:
            got["lat_ort"].append(median_ms(ort_fn, 500, warm=20))
    med = {k: statistics.median(v) for k, v in got.items() if v}
    version = torch.__version__ if torch else "-"
    print("| what (CPU, %d threads) | smelt | PyTorch %s eager | torch.compile | ONNX Runtime |" % (THREADS, version))
    print("|---|---:|---:|---:|---:|")
    for kind, what in [("cnn", "CNN training step, batch 64"),
                       ("gpt", "GPT training step, B%(B)d T%(T)d C%(C)d L%(L)d H%(H)d" % GPT)]:
        cells = []
        for mode in ["eager", "compile"]:
            key = f"{kind}_{mode}"
            if key in med:
                cells.append("%.2f ms (%.2fx)" % (med[key], med[key] / med[kind]))
            else:
                cells.append("skipped: %s" % (refs.get(kind, {}).get("compile_why", "PyTorch is not installed")))
        print("| %s | %.2f ms | %s | %s | |" % (what, med[kind], cells[0], cells[1]))
    lat = "%.3f ms (%.2fx)" % (med["lat_ort"], med["lat_ort"] / med["lat"]) if "lat_ort" in med else "skipped: " + ort_what
    print("| CNN inference, batch 1, median latency | %.3f ms | | | %s |" % (med["lat"], lat))
    print("\n(x): the reference's time over smelt's; above 1, smelt is faster.")


if __name__ == "__main__":
    main()
