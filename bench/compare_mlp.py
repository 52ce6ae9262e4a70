#!/usr/bin/env python3
"""The MLP training step (784-256-256-10, batch 128, AdamW) on the CPU:
smelt against PyTorch eager and torch.compile with the same thread count,
measured alternately in one run; prints a table row with the ratios.

A reference that is not installed is reported as skipped, never as a win.
Usage: python3 bench/compare_mlp.py [THREADS]
"""
import statistics
import subprocess
import sys
import time

THREADS = int(sys.argv[1]) if len(sys.argv) > 1 else 2


def smelt_ms():
    out = subprocess.run(["build/bench-mlp-step", str(THREADS)], check=True, capture_output=True, text=True).stdout
    return float(out.split("smelt_ms=")[1])


def torch_step_fn(compiled):
    import torch
    torch.set_num_threads(THREADS)
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
                                torch.nn.ReLU(), torch.nn.Linear(256, 10))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    x = torch.rand(128, 784)
    y = torch.randint(0, 10, (128,))
    loss_fn = torch.nn.functional.cross_entropy

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
    if compiled:
        step = torch.compile(step)
    return step


def torch_ms(step, runs=30, warm=5):
    times = []
    for i in range(warm + runs):
        t0 = time.perf_counter()
        step()
        if i >= warm:
            times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main():
    try:
        import torch
        version = torch.__version__
        eager = torch_step_fn(False)
    except ImportError:
        version, eager = None, None
    compiled, why = None, "PyTorch is not installed"
    if version:
        if hasattr(torch, "compile"):
            try:
                compiled = torch_step_fn(True)
                compiled()
            except Exception as e:  # a backend that cannot run here
                compiled, why = None, "torch.compile failed: %s" % type(e).__name__
        else:
            why = "torch %s has no torch.compile" % version
    s, e, c = [], [], []
    for _ in range(3):   # alternate, so both see the same machine
        s.append(smelt_ms())
        if eager:
            e.append(torch_ms(eager))
        if compiled:
            c.append(torch_ms(compiled))
    sm = statistics.median(s)
    row = "| MLP training step, batch 128, %d threads | smelt %.2f ms" % (THREADS, sm)
    if e:
        em = statistics.median(e)
        row += " | PyTorch %s eager %.2f ms (PyTorch time / smelt time: %.2f)" % (version, em, em / sm)
    else:
        row += " | PyTorch eager skipped: not installed"
    if c:
        cm = statistics.median(c)
        row += " | torch.compile %.2f ms (PyTorch time / smelt time: %.2f) |" % (cm, cm / sm)
    else:
        row += " | torch.compile skipped: %s |" % why
    print(row)


if __name__ == "__main__":
    main()
